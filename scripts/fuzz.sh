#!/bin/sh
# fuzz.sh [TARGET...]: build the libFuzzer targets with clang and run each
# for FUZZ_SECONDS (default 60) on its seed corpus (tests/fuzz/corpus/*;
# fuzz_wire shares the query seeds).  New inputs go to
# build-fuzz/corpus/<target>; crashes to build-fuzz/crashes.  A crash fails
# the script: turn its input into a regression seed and a test.
set -eu
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
STEERDNS_EXTRA_PKGS="${STEERDNS_EXTRA_PKGS:-clang libclang-rt-14-dev}" \
CC=clang ./scripts/setup.sh build-fuzz -DSTEERDNS_FUZZ=ON -DCMAKE_C_COMPILER=clang
TARGETS=${*:-"query wire config health"}
mkdir -p build-fuzz/crashes
failed=""
for t in $TARGETS; do
  seeds=tests/fuzz/corpus/$t
  [ "$t" = wire ] && seeds=tests/fuzz/corpus/query
  work=build-fuzz/corpus/$t
  mkdir -p "$work"
  echo "fuzz_$t: ${SECONDS_EACH}s"
  if ./build-fuzz/tests/fuzz/fuzz_$t -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix=build-fuzz/crashes/$t- -print_final_stats=1 "$work" "$seeds" \
       > build-fuzz/fuzz_$t.log 2>&1; then
    grep -E "^Done|number_of_executed_units" build-fuzz/fuzz_$t.log | head -n 2
  else
    tail -n 40 build-fuzz/fuzz_$t.log
    failed="$failed $t"
  fi
done
if [ -n "$failed" ]; then
  echo "fuzz: FAILED:$failed (inputs in build-fuzz/crashes/)" >&2
  exit 1
fi
echo "fuzz: no crash in $TARGETS"
