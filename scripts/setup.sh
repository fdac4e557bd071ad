#!/usr/bin/env bash
# Installs rill's build and test dependencies from Debian packages (bookworm), only those missing.
#   scripts/setup.sh             build + tests
#   scripts/setup.sh ros         also ROS 1 (roscore, roscpp, std_msgs, std_srvs, diagnostic_msgs, catkin, and
#                                the message generator gencpp) for the ROS node
#   scripts/setup.sh --wait-only only wait until no other package manager holds dpkg's or apt's locks
# A fresh machine often runs its own updates at boot: the script waits for them (up to
# RILL_SETUP_LOCK_TIMEOUT seconds, default 600), saying what it waits for, instead of failing.
set -euo pipefail

locks=(/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock)

# Who holds a package lock now ("PID COMMAND PATH" lines), or nothing.
lock_holders() {
  lslocks -n -o PID,COMMAND,PATH 2>/dev/null | awk -v l="${locks[*]}" 'BEGIN { n = split(l, a, " "); for (i = 1; i <= n; ++i) want[a[i]] = 1 }
    want[$3] { print }' || true
}

wait_for_package_locks() {
  local limit="${RILL_SETUP_LOCK_TIMEOUT:-600}" waited=0 holders
  holders=$(lock_holders)
  while [ -n "$holders" ]; do
    if [ "$waited" -ge "$limit" ]; then
      echo "setup: the package database is still locked after ${limit} s by:" >&2
      echo "$holders" | sed 's/^/  /' >&2
      echo "setup: wait for it to finish (or stop it), then run this again; RILL_SETUP_LOCK_TIMEOUT=N waits longer" >&2
      exit 1
    fi
    if [ $((waited % 30)) -eq 0 ]; then
      echo "setup: waiting for another package manager to finish (${waited}/${limit} s):" >&2
      echo "$holders" | sed 's/^/  /' >&2
    fi
    sleep 5
    waited=$((waited + 5))
    holders=$(lock_holders)
  done
}

if [ "${1:-}" = "--wait-only" ]; then
  wait_for_package_locks
  exit 0
fi

pkgs=(cmake ninja-build g++ pkg-config libpthreadpool-dev
      libflatbuffers-dev flatbuffers-compiler doctest-dev nlohmann-json3-dev clang libclang-rt-14-dev
      libpcre2-dev libutf8proc-dev libsentencepiece-dev sentencepiece libxnnpack-dev python3-regex python3-numpy
      python3-dev pybind11-dev python3-pybind11 python3-pytest python3-torch python3-matplotlib)
if [ "${1:-}" = "ros" ]; then
  pkgs+=(ros-core-dev libroscpp-dev libstd-msgs-dev libstd-srvs-dev libdiagnostic-msgs-dev catkin python3
        python3-gencpp python3-genmsg ros-std-msgs)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  wait_for_package_locks
  # apt itself also waits for dpkg's lock should another manager start in between.
  $SUDO apt-get -o DPkg::Lock::Timeout="${RILL_SETUP_LOCK_TIMEOUT:-600}" update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout="${RILL_SETUP_LOCK_TIMEOUT:-600}" \
    install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
