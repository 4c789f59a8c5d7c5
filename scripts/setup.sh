#!/bin/sh
# setup.sh [BUILD_DIR] [extra cmake args...]: install what is missing on a
# Debian machine (only the missing packages, through sudo when not root),
# then configure and build steerdns.  Idempotent; used by the README's two
# commands and by .ci/run.
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
[ $# -gt 0 ] && shift

PKGS="build-essential cmake pkg-config libuv1-dev libldns-dev libmaxminddb-dev libyaml-dev \
libcurl4-openssl-dev libjansson-dev libcmocka-dev"
[ -n "${STEERDNS_EXTRA_PKGS:-}" ] && PKGS="$PKGS $STEERDNS_EXTRA_PKGS"

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing:$missing" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  # shellcheck disable=SC2086
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
