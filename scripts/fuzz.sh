#!/bin/sh
# fuzz.sh [TARGET...]: build the libFuzzer targets with clang and run each
# for FUZZ_SECONDS (default 60) on its seed corpus (tests/fuzz/corpus/*).
# New inputs go to build-fuzz/corpus/<target>; crashes to build-fuzz/crashes.
# A crash fails the script: turn it into a regression seed and a test.
set -eu
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
STEERDNS_EXTRA_PKGS="${STEERDNS_EXTRA_PKGS:-clang libclang-rt-14-dev}" \
CC=clang ./scripts/setup.sh build-fuzz -DSTEERDNS_FUZZ=ON -DCMAKE_C_COMPILER=clang
TARGETS=${*:-"query wire config health"}
mkdir -p build-fuzz/crashes
for t in $TARGETS; do
  seeds=tests/fuzz/corpus/$t
  work=build-fuzz/corpus/$t
  mkdir -p "$work"
  echo "fuzz_$t: ${SECONDS_EACH}s"
  ./build-fuzz/tests/fuzz/fuzz_$t -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=build-fuzz/crashes/$t- -print_final_stats=1 "$work" "$seeds" 2>&1 | tail -n 12
done
