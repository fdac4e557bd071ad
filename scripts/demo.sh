#!/usr/bin/env bash
# README command 1: set up, build, convert the bundled demo model and stream Shakespeare-like text.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh -DRILL_BUILD_TESTS=OFF
mkdir -p out
build/bin/rill convert examples/demo_model/checkpoint -o out/demo.rill --force
build/bin/rill inspect out/demo.rill
echo
build/bin/rill run out/demo.rill --prompt "ROMEO:" -n 300 "$@"
