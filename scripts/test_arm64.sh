#!/usr/bin/env bash
# Cross-builds the runtime, converter and tests for aarch64 (the NEON kernels) and runs the kernel and
# op and golden suites under qemu-user. Installs g++-aarch64-linux-gnu and qemu-user if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for p in g++-aarch64-linux-gnu qemu-user; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
cmake -S . -B build-arm64 -G Ninja --toolchain platforms/linux-aarch64/toolchain.cmake -DCMAKE_BUILD_TYPE=Release \
  -DRILL_BUILD_TESTS=ON -DRILL_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-arm64 --target rill_tests -j "$(nproc)"
qemu-aarch64 -L /usr/aarch64-linux-gnu build-arm64/tests/rill_tests --test-suite=kernels,ops,golden,batch
