#!/bin/bash
# run.sh: the side-by-side benchmark of issue 6, from a clean checkout, in
# one command:
#   1. build steerdns in release mode;
#   2. install (Debian packages) and start the peers of ../shared/peers:
#      gdnsd, Knot DNS, NSD, PowerDNS, BIND, all on the geo zone dl.example.net;
#   3. start steerdns on the same zone and mapping (bench/peers/lab.yaml,
#      the kit's lab-city.mmdb) on 127.0.0.1:5310, one worker;
#   4. check with the kit's check-geo.sh that steerdns answers as the peers;
#   5. run both load generators of the kit with steerdns as the EXTRA
#      target in the same rotating rounds, ECS and not: dnsperf (bench.sh)
#      and the saturating blast with its fixed-answer ceiling server
#      (bench-sat.sh);
#   6. print one table (bench/peers/table.py) and stop what it started.
# Environment: DUR (10) and ROUNDS (3) per run as in the kit; PEERS_DIR
# (../shared/peers); PEERS_RUN (the kit's run folder).  About 15 minutes
# with the defaults; DUR=3 ROUNDS=1 for a smoke run.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/peers}
export PEERS_RUN=${PEERS_RUN:-${TMPDIR:-/tmp}/steerdns-peers}
mkdir -p "$PEERS_RUN"

echo "== 1. build (release)"
BUILD_TYPE=Release STEERDNS_EXTRA_PKGS="python3" ./scripts/setup.sh build-rel -DCMAKE_BUILD_TYPE=Release -DSTEERDNS_TESTS=OFF >/dev/null

echo "== 2. peers"
"$PEERS_DIR/install.sh"
"$PEERS_DIR/start-all.sh"

echo "== 3. steerdns"
echo "UP" > "$PEERS_RUN/up.state"
sed -e "s|@PEERS@|$PEERS_DIR|g" -e "s|@RUN@|$PEERS_RUN|g" bench/peers/lab.yaml > "$PEERS_RUN/steerdns.yaml"
./build-rel/steerdns check -c "$PEERS_RUN/steerdns.yaml" >/dev/null
taskset -c "${SERVER_CPU:-0}" ./build-rel/steerdns serve -c "$PEERS_RUN/steerdns.yaml" \
  > "$PEERS_RUN/steerdns.out" 2> "$PEERS_RUN/steerdns.log" &
SD_PID=$!
cleanup() {
  kill "$SD_PID" 2>/dev/null && wait "$SD_PID" 2>/dev/null || true
  "$PEERS_DIR/stop.sh" all >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q "steerdns ready" "$PEERS_RUN/steerdns.out" 2>/dev/null && break; sleep 0.1; done
grep -q "steerdns ready" "$PEERS_RUN/steerdns.out" || { cat "$PEERS_RUN/steerdns.log"; exit 1; }

echo "== 4. same answers as the peers"
EXTRA_NAME=steerdns EXTRA_PORT=5310 "$PEERS_DIR/check-geo.sh" | tail -n 3

export EXTRA_NAME=steerdns EXTRA_PORT=5310 EXTRA_PID=$SD_PID
echo "== 5a. dnsperf (bench.sh)"
"$PEERS_DIR/bench.sh" | tail -n 2
DP=$(ls -td "$PEERS_RUN"/results/bench-udp-* | head -1)
echo "== 5b. saturation (bench-sat.sh, blast + ceiling)"
"$PEERS_DIR/bench-sat.sh" | tail -n 2
SAT=$(ls -td "$PEERS_RUN"/results/sat-* | head -1)

echo "== 6. one table (medians over rounds; dnsperf: $DP; blast: $SAT)"
python3 bench/peers/table.py "$DP/runs.csv" "$SAT/runs.csv" steerdns | tee "$PEERS_RUN/steerdns-table.md"
