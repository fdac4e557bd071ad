#!/usr/bin/env bash
# Instructions per token of rill's aarch64 kernel tables, counted under qemu-user (a measurement, not
# a test, and not a speed: no Arm hardware is involved). Needs the aarch64 build of scripts/test_arm64.sh
# (build-arm64 with its sysroot) and the x86 build (build/bin/rill) for the converter.
#
#   scripts/arm_insn_counts.sh [--base DIR] [--models "NAME ..."] [--dtypes "q8 q4"]
#
# For each real config NAME (tests/checkpoints; default mamba-130m-hf and rwkv7-0.1B-world): random
# weights of its shape (make_random.py), converted at each dtype, then scripts/arm/insn_driver.c under
# qemu-aarch64 with scripts/arm/insn_count.c as a TCG plugin on three CPUs, one per table:
#   cortex-a53 -> neon, cortex-a76 -> neon-dotprod, max -> neon-i8mm
#   decode  = (count(prefill 0, decode 40) - count(prefill 0, decode 8)) / 32
#   prefill = (count(prefill 64, decode 0) - count(prefill 0, decode 0)) / 64   (one 64-token pass)
# --base DIR: also count another checkout's aarch64 build (DIR/build-arm64, e.g. an older commit's),
# on cortex-a53, with the same driver and models.
# --xnnpack: instead, XNNPACK's fully-connected operators (Debian's arm64 libxnnpack, 2022) against
# rill's products on the 130m in_proj and out_proj shapes, 1 and 64 tokens, per call:
#   (count(5 calls) - count(1 call)) / 4   with build-arm64/bin/rill_xnnpack_bench --count
# --llama BIN --llama-cpu CPU: instead, llama.cpp's llama-bench BIN (built for aarch64) on the twin
# GGUF files that scripts/compare_llama.py writes (--twins DIR, default /tmp/rill-compare/<shape>/
# twin.Q8_0.gguf and twin.Q4_0.gguf), counted the same way on -cpu CPU, one thread, no warm-up:
#   decode  = (count(-p 0 -n 40) - count(-p 0 -n 8)) / 32
#   prefill = (count(-p 64 -n 0) - count(-p 0 -n 0)) / 64
set -euo pipefail
cd "$(dirname "$0")/.."
base="" models="mamba-130m-hf rwkv7-0.1B-world" dtypes="q8 q4" xnnpack=0 llama="" llama_cpu=cortex-a76
twins=/tmp/rill-compare
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --dtypes) dtypes=$2; shift 2 ;;
    --xnnpack) xnnpack=1; shift ;;
    --llama) llama=$2; shift 2 ;;
    --llama-cpu) llama_cpu=$2; shift 2 ;;
    --twins) twins=$2; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -x build/bin/rill ] || { echo "build/bin/rill is missing: run scripts/build.sh first" >&2; exit 1; }
[ -d build-arm64/sysroot ] || { echo "build-arm64 is missing: run scripts/test_arm64.sh first" >&2; exit 1; }
work=build-arm64/insn
mkdir -p "$work"
sysroot=$PWD/build-arm64/sysroot

cc -shared -fPIC -O2 -Wall -o "$work/insn_count.so" scripts/arm/insn_count.c

# counted CPU LIBDIRS PROGRAM ARGS...: the instructions PROGRAM executes under qemu on -cpu CPU, its
# libraries looked for in LIBDIRS (':'-separated, may be empty); prints nothing and fails where the
# program fails (e.g. an operator the CPU cannot run).
counted() {
  local cpu=$1 libs=$2
  shift 2
  qemu-aarch64 -cpu "$cpu" -L /usr/aarch64-linux-gnu -plugin "$work/insn_count.so,outfile=$work/count.$$.txt" \
    -E LD_LIBRARY_PATH="$libs" "$@" >/dev/null 2>&1 && cat "$work/count.$$.txt"
}
# The table each emulated CPU chooses (dispatch.cc).
table_of() {
  case $1 in cortex-a53) echo neon ;; cortex-a76) echo neon-dotprod ;; max) echo neon-i8mm ;; esac
}

if [ -n "$llama" ]; then
  lcount() {  # lcount GGUF PROMPT GEN
    counted "$llama_cpu" "" "$llama" -m "$1" -p "$2" -n "$3" -r 1 --no-warmup -t 1
  }
  printf '| twin | type | llama.cpp on %s | decode instr/token | prefill instr/token (64-token pass) |\n|---|---|---|---:|---:|\n' "$llama_cpu"
  for shape in mamba rwkv7; do
    for q in Q8_0 Q4_0; do
      g=$twins/$shape/twin.$q.gguf
      [ -f "$g" ] || { echo "$g is missing: run scripts/compare_llama.py --shapes $shape first" >&2; exit 1; }
      d40=$(lcount "$g" 0 40); d8=$(lcount "$g" 0 8); p64=$(lcount "$g" 64 0); p0=$(lcount "$g" 0 0)
      dec=$(( (d40 - d8) / 32 )) pre=$(( (p64 - p0) / 64 ))
      printf '| %s | %s | %s | %d | %d |\n' "$shape" "$q" "$(basename "$(dirname "$(dirname "$llama")")")" "$dec" "$pre"
    done
  done
  exit 0
fi

if [ "$xnnpack" = 1 ]; then
  cmake --build build-arm64 --target rill_xnnpack_bench -j "$(nproc)" >/dev/null
  xcount() {  # xcount CPU KERNEL SHAPE TOKENS REPS
    counted "$1" "$sysroot/usr/lib/aarch64-linux-gnu" build-arm64/bin/rill_xnnpack_bench --count "$2" "$3" "$4" "$5"
  }
  shape_names=("130m in_proj 768 -> 3072" "130m out_proj 1536 -> 768")
  printf '| CPU (table) | shape | tokens | kernel | instructions per call | XNNPACK / rill |\n|---|---|---:|---|---:|---:|\n'
  for cpu in cortex-a53 cortex-a76 max; do
    t=$(table_of $cpu)
    for shape in 0 1; do
      for T in 1 64; do
        for pair in "rill-q8x16 xnn-q8" "rill-f32 xnn-f32" "rill-f16 xnn-f16"; do
          read -r rk xk <<<"$pair"
          r5=$(xcount $cpu $rk $shape $T 5); r1=$(xcount $cpu $rk $shape $T 1)
          r=$(( (r5 - r1) / 4 ))
          printf '| %s (%s) | %s | %d | %s | %d | |\n' "$cpu" "$t" "${shape_names[$shape]}" "$T" "$rk" "$r"
          if x5=$(xcount $cpu $xk $shape $T 5) && x1=$(xcount $cpu $xk $shape $T 1); then
            x=$(( (x5 - x1) / 4 ))
            printf '| %s (%s) | %s | %d | %s | %d | %s |\n' "$cpu" "$t" "${shape_names[$shape]}" "$T" "$xk" "$x" \
              "$(awk -v a="$x" -v b="$r" 'BEGIN {printf "%.2f", a / b}')"
          else
            printf '| %s (%s) | %s | %d | %s | cannot run on this CPU | |\n' "$cpu" "$t" "${shape_names[$shape]}" "$T" "$xk"
          fi
        done
      done
    done
  done
  exit 0
fi
driver() {  # driver DIR OUT: the driver linked against DIR/build-arm64's librill
  cmake --build "$1/build-arm64" --target rill_shared -j "$(nproc)" >/dev/null
  aarch64-linux-gnu-gcc -std=c99 -O2 -Wall -I "$1/runtime/include" \
    scripts/arm/insn_driver.c -L "$1/build-arm64/runtime" -lrill -o "$2"
}
driver . "$work/driver"
[ -n "$base" ] && driver "$base" "$work/driver-base"

count() {  # count CPU DRIVER LIBDIR MODEL PREFILL DECODE -> instructions
  counted "$1" "$3:$sysroot/usr/lib/aarch64-linux-gnu" "$2" "$4" "$5" "$6"
}
per_token() {  # per_token CPU DRIVER LIBDIR MODEL -> "decode prefill" (instructions per token)
  local d8 d40 p0 p64
  d8=$(count "$@" 0 8); d40=$(count "$@" 0 40); p0=$(count "$@" 0 0); p64=$(count "$@" 64 0)
  echo "$(( (d40 - d8) / 32 )) $(( (p64 - p0) / 64 ))"
}

printf '| model | dtype | table | decode instr/token | prefill instr/token (64-token pass) |\n|---|---|---|---:|---:|\n'
for m in $models; do
  [ -f "$work/$m/config.json" ] || /usr/bin/python3 tests/checkpoints/make_random.py "$m" "$work/$m" >/dev/null
  for d in $dtypes; do
    f=$work/$m-$d.rill
    [ -f "$f" ] || build/bin/rill convert "$work/$m" -o "$f" --dtype "$d" --tokenizer none -q --force
    if [ -n "$base" ]; then
      read -r dec pre < <(per_token cortex-a53 "$work/driver-base" "$base/build-arm64/runtime" "$f")
      printf '| %s | %s | neon (%s) | %d | %d |\n' "$m" "$d" "$(git -C "$base" log -1 --format=%h)" "$dec" "$pre"
    fi
    for cpu in cortex-a53 cortex-a76 max; do
      t=$(table_of $cpu)
      read -r dec pre < <(per_token "$cpu" "$work/driver" "$PWD/build-arm64/runtime" "$f")
      printf '| %s | %s | %s | %d | %d |\n' "$m" "$d" "$t" "$dec" "$pre"
    done
  done
done
