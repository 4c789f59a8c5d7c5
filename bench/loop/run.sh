#!/bin/sh
# bench/loop/run.sh - the closed-loop comparison in one command: steerdns
# (damped and literal) and the three reference policies of the harness
# (static, threshold, threshold-spread) on the scenarios, at TTL caps 5 and
# 30, as one markdown table (docs/steering.md explains it).
#
#   bench/loop/run.sh                      # everything: 4 scenarios x 2 caps x 5 servers, ~40 min
#   bench/loop/run.sh --quick              # small and flash, damped and static, cap 5, 60 s runs
#   bench/loop/run.sh --scenarios small,flash --caps 5 --servers damped,threshold-spread
#   bench/loop/run.sh --duration 60 --out /tmp/loop
#
# Options (the rest go to loopbench.py, see --help there):
#   --build DIR      the build folder holding steerdns (default: $STEERDNS_BUILD,
#                    else build/ or build-*/ of the repository, newest first)
#   --quick          a short subset (overridable by the options after it)
#   --scenarios, --caps, --servers, --duration, --jobs, --out, --set key=value
#
# Needs a python3 that can `import dns` (Debian's python3-dnspython); set
# PYTHON to choose one.  Every process started is stopped by its PID;
# results go to --out (default ${TMPDIR:-/tmp}/steerdns-loop), never into
# the harness folder.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${STEERDNS_BUILD:-}
args=
while [ $# -gt 0 ]; do
    case $1 in
    --build) build=$2; shift 2 ;;
    --build=*) build=${1#--build=}; shift ;;
    --quick) args="$args --scenarios small,flash --caps 5 --servers damped,static --duration 60"; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args="$args $(printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")")"; shift ;;
    esac
done

if [ -z "$build" ]; then
    for d in "$repo/build" $(ls -dt "$repo"/build-* 2>/dev/null); do
        if [ -x "$d/steerdns" ]; then build=$d; break; fi
    done
fi
if [ -z "$build" ] || [ ! -x "$build/steerdns" ]; then
    echo "run.sh: no steerdns binary; build first (cmake -S . -B build && make -C build) or pass --build DIR" >&2
    exit 1
fi

py=${PYTHON:-}
if [ -z "$py" ]; then
    for p in /usr/bin/python3 python3; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import dns.message' 2>/dev/null; then py=$p; break; fi
    done
fi
if [ -z "$py" ]; then
    echo "run.sh: no python3 with dnspython (apt-get install python3-dnspython, or set PYTHON)" >&2
    exit 1
fi

eval "set -- $args"
exec "$py" "$here/loopbench.py" --steerdns "$build/steerdns" --python "$py" "$@"
