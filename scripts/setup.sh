#!/usr/bin/env bash
# Installs rill's build and test dependencies from Debian packages (bookworm), only those missing.
set -euo pipefail
pkgs=(cmake ninja-build g++ pkg-config libpthreadpool-dev
      libflatbuffers-dev flatbuffers-compiler doctest-dev nlohmann-json3-dev clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
