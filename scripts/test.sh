#!/bin/sh
# test.sh [BUILD_DIR] [extra cmake args...]: set up (install what is
# missing, build) and run the whole test suite with ctest.
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
[ $# -gt 0 ] && shift
./scripts/setup.sh "$BUILD" "$@"
cd "$BUILD"
ctest --output-on-failure -j"$(nproc)" ${CTEST_ARGS:-}
