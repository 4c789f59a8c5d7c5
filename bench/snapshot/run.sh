#!/bin/sh
# run.sh [BUILD_DIR]: build time and memory of a snapshot for a large
# generated configuration (100k names, 10k CIDR overrides, 1,000 clusters),
# measured with `steerdns check` under /usr/bin/time (3 runs).
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build-rel}
[ -x "$BUILD/steerdns" ] || { BUILD_TYPE=Release ./scripts/setup.sh "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSTEERDNS_TESTS=OFF; }
OUT=${TMPDIR:-/tmp}/steerdns-large
rm -rf "$OUT"
python3 bench/snapshot/gen-large.py "$OUT"
echo "config: $(du -sh "$OUT" | cut -f1) in $OUT"
for i in 1 2 3; do
  /usr/bin/time -f "run $i: %e s wall, %U s user, %M KiB max RSS" "$BUILD/steerdns" check -c "$OUT/steerdns.yaml" | tail -1
done
