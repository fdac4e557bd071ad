#!/usr/bin/env bash
# README command 2: set up, build and run every test:
#   1. release build: unit, golden, zero-allocation, CLI, C API + ABI, install + consumers (C++, C),
#      and the ROS node against a real roscore
#   2. the unit, golden and CLI tests again under ASan + UBSan (leak checking on)
#   3. sessions on many threads over one model under ThreadSanitizer (the "threads" suite; the "pool"
#      suite is left to 1 and 2: pthreadpool is not instrumented, so TSan cannot see its hand-offs)
#   4. each libFuzzer target for FUZZ_SECONDS (default 30) on its committed seed corpus
#   5. the kernel, op and golden suites cross-built for aarch64 (NEON) and run under qemu-user
#   6. where nvcc exists: the CUDA backend built (RILL_CUDA, sm_87/90/110 + PTX), the CLI test on that
#      build, and the CUDA suite, which ctest reports as "Skipped" on a machine without a CUDA device
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh ros
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "== release build" >&2
BUILD_DIR=build scripts/build.sh -DRILL_BUILD_TESTS=ON -DRILL_SANITIZE=OFF -DRILL_ROS=ON -DRILL_CUDA=OFF
(cd build && ctest --output-on-failure -j 2) | tee -a "$log"
echo "== ASan + UBSan build" >&2
BUILD_DIR=build-asan BUILD_TYPE=RelWithDebInfo scripts/build.sh -DRILL_BUILD_TESTS=ON -DRILL_SANITIZE=ON \
  -DRILL_BUILD_EXAMPLES=OFF
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure -j 2) | tee -a "$log"
echo "== ThreadSanitizer build: sessions on many threads" >&2
BUILD_DIR=build-tsan BUILD_TYPE=RelWithDebInfo scripts/build.sh -DRILL_TSAN=ON -DRILL_BUILD_TESTS=ON \
  -DRILL_BUILD_EXAMPLES=OFF
TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/rill_tests --test-suite=threads
echo "== fuzzing, ${FUZZ_SECONDS:-30} s per target" >&2
scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
echo "== aarch64 (NEON) under qemu-user" >&2
scripts/test_arm64.sh | tee -a "$log"
nvcc=$(command -v nvcc || true)
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
cuda_note="CUDA backend not built (no nvcc)"
if [ -n "$nvcc" ]; then
  # The release build again with the CUDA backend (only the registry and the CUDA file compile anew).
  echo "== CUDA backend build ($nvcc)" >&2
  cmake -S . -B build -DRILL_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" >/dev/null
  cmake --build build -j "$(nproc)" --target rill_cli rill_cuda_tests
  build/bin/rill --version
  (cd build && ctest --output-on-failure -R '^cli$') | tee -a "$log"
  (cd build && ctest -V -R '^cuda$' | grep -v '^[0-9]*: \[doctest\]') | tee -a "$log"  # its output, whatever the result
  cuda_note="CUDA backend built"
fi
ctests=$(grep -o 'tests failed out of [0-9]*' "$log" | awk '{s += $NF} END {print s + 0}')
skipped=$(grep -c '(Skipped)' "$log" || true)
[ "$skipped" -gt 0 ] && cuda_note="$cuda_note; its device suite SKIPPED: no CUDA device here"
echo "all suites green: $((ctests - skipped)) ctest tests (release + sanitizers + CUDA build), TSan threads suite, 4 fuzz targets, aarch64 kernel+op+golden suites; $cuda_note"
echo "$((ctests - skipped + 6)) passed, 0 failed, $skipped skipped"
