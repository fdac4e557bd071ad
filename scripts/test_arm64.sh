#!/usr/bin/env bash
# Cross-builds the runtime, converter and tests for aarch64 (the NEON kernels) and runs the kernel, op,
# golden, batch and spec suites under qemu-user. Installs g++-aarch64-linux-gnu and qemu-user if missing.
# The libraries the x86 build links (pthreadpool, PCRE2, utf8proc, SentencePiece, XNNPACK) come from Debian's
# arm64 packages, unpacked into build-arm64/sysroot with a package index of its own (the system's
# dpkg is not touched), so the aarch64 build has every feature the x86 one has.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for p in g++-aarch64-linux-gnu qemu-user; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  scripts/setup.sh --wait-only
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

sysroot="$PWD/build-arm64/sysroot"
pkgs=(libpthreadpool-dev libpthreadpool0 libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2
      libsentencepiece-dev libsentencepiece0 libxnnpack-dev libxnnpack0 libcpuinfo0)
if [ ! -f "$sysroot/.complete" ]; then
  echo "aarch64: fetching Debian's arm64 packages of ${pkgs[*]}" >&2
  apt_dir="$PWD/build-arm64/apt"
  rm -rf "$sysroot" "$apt_dir"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs" "$sysroot"
  apt_opts=(-q -o APT::Architecture=arm64 -o APT::Architectures=arm64 -o "Dir::State::Lists=$apt_dir/lists"
            -o "Dir::Cache=$apt_dir/cache" -o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update >/dev/null
  (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" download "${pkgs[@]}" >/dev/null)
  for d in "$apt_dir"/debs/*.deb; do dpkg-deb -x "$d" "$sysroot"; done
  touch "$sysroot/.complete"
fi

cmake -S . -B build-arm64 -G Ninja --toolchain platforms/linux-aarch64/toolchain.cmake -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_FIND_ROOT_PATH="$sysroot" -DRILL_REQUIRE_DEPS=ON -DRILL_BUILD_TESTS=ON -DRILL_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-arm64 --target rill_tests -j "$(nproc)"
qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH="$sysroot/usr/lib/aarch64-linux-gnu" \
  build-arm64/tests/rill_tests --test-suite=kernels,ops,golden,batch,spec
