#!/usr/bin/env bash
# README command 2: set up, build and run every test: release build (unit, golden, zero-allocation,
# CLI, install + find_package consumer), then the same unit and golden tests under ASan + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== release build" >&2
BUILD_DIR=build scripts/build.sh -DRILL_BUILD_TESTS=ON -DRILL_SANITIZE=OFF
(cd build && ctest --output-on-failure -j 2)
echo "== ASan + UBSan build" >&2
BUILD_DIR=build-asan BUILD_TYPE=RelWithDebInfo scripts/build.sh -DRILL_BUILD_TESTS=ON -DRILL_SANITIZE=ON -DRILL_BUILD_EXAMPLES=OFF
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure -j 2)
