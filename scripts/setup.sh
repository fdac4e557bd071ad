#!/usr/bin/env bash
# Installs rill's build and test dependencies from Debian packages (bookworm), only those missing.
#   scripts/setup.sh        build + tests
#   scripts/setup.sh ros    also ROS 1 (roscore, roscpp, std_msgs, std_srvs, catkin) for the ROS node
set -euo pipefail
pkgs=(cmake ninja-build g++ pkg-config libpthreadpool-dev
      libflatbuffers-dev flatbuffers-compiler doctest-dev nlohmann-json3-dev clang libclang-rt-14-dev
      libpcre2-dev libutf8proc-dev libsentencepiece-dev sentencepiece python3-regex python3-numpy)
if [ "${1:-}" = "ros" ]; then
  pkgs+=(ros-core-dev libroscpp-dev libstd-msgs-dev libstd-srvs-dev catkin python3)
fi
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
