#!/usr/bin/env bash
# Cross-builds the runtime, converter and tests for aarch64 (the NEON kernels) and runs the kernel, op,
# golden, batch, vector and spec suites under qemu-user on three emulated CPUs side by side, each of which picks a
# different kernel table at run time (getauxval):
#   cortex-a53  ARMv8.0            -> neon
#   cortex-a76  ARMv8.2 + dotprod  -> neon-dotprod
#   max         ARMv8.x + i8mm     -> neon-i8mm
# Every run compares every table its CPU can run with the reference. A table the build holds that no run
# chose fails the stage. Installs g++-aarch64-linux-gnu and qemu-user if missing.
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

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
# The three emulated CPUs run side by side (qemu-user runs the suites on one host thread each).
cpus=(cortex-a53 cortex-a76 max)
pids=()
t0=$(date +%s)
for cpu in "${cpus[@]}"; do
  ( s=$(date +%s)
    rc=0
    qemu-aarch64 -cpu "$cpu" -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH="$sysroot/usr/lib/aarch64-linux-gnu" \
      -E RILL_TEST_UNDER_QEMU=1 \
      build-arm64/tests/rill_tests --test-suite=kernels,ops,golden,batch,vector,spec > "$logs/$cpu.log" 2>&1 || rc=$?
    echo "$(( $(date +%s) - s ))" > "$logs/$cpu.secs"
    exit $rc ) &
  pids+=($!)
done
failed=()
for i in "${!cpus[@]}"; do
  wait "${pids[$i]}" || failed+=("${cpus[$i]}")
done
compiled="" chosen=""
for cpu in "${cpus[@]}"; do
  log="$logs/$cpu.log"
  echo "== aarch64 -cpu $cpu"
  cat "$log"
  case " ${failed[*]} " in *" $cpu "*)
    echo "aarch64 -cpu $cpu: the suites failed" >&2
    exit 1 ;;
  esac
  # "kernel tables run: A B (active: X); compiled but not runnable on this CPU: C D" (kernels_test.cc)
  line=$(grep -o 'kernel tables run: .*' "$log" | head -n 1)
  active=$(sed -n 's/.*(active: \([^)]*\)).*/\1/p' <<<"$line")
  [ -n "$active" ] || { echo "aarch64 -cpu $cpu: the kernel suite did not name its active table" >&2; exit 1; }
  ran=$(sed -n 's/kernel tables run: \(.*\) (active.*/\1/p' <<<"$line")
  not_runnable=$(sed -n 's/.*not runnable on this CPU: //p' <<<"$line" | sed 's/^none$//')
  compiled=$(echo $compiled $ran $not_runnable | tr ' ' '\n' | sort -u | tr '\n' ' ')
  case " $chosen " in *" $active "*)
    echo "aarch64 -cpu $cpu chose table $active, as an earlier CPU did: each CPU must exercise its own table" >&2
    exit 1 ;;
  esac
  chosen="$chosen $active"
  msg="aarch64 -cpu $cpu: table $active chosen; tables compared with the reference: $ran ($(cat "$logs/$cpu.secs") s)"
  echo "$msg"
  if [ -n "${RILL_TEST_REPORT_DIR:-}" ]; then echo "$msg" >> "$RILL_TEST_REPORT_DIR/tables.txt"; fi
done
echo "aarch64: the three CPUs side by side in $(( $(date +%s) - t0 )) s"
for t in $compiled; do
  [ "$t" = ref ] && continue
  case " $chosen " in *" $t "*) ;; *)
    echo "aarch64: table $t is compiled but no emulated CPU chose it" >&2
    exit 1 ;;
  esac
done
