#!/bin/sh
# serve-example.sh: set up (install what is missing, build) and serve the
# example configuration on 127.0.0.1:5353 and [::1]:5353 in the foreground.
#   dig @127.0.0.1 -p 5353 www.example.net
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh build
exec ./build/steerdns serve -c examples/steerdns.yaml
