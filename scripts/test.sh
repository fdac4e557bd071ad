#!/usr/bin/env bash
# README command 2: set up, build and run every test, stage by stage:
#   release   unit, spec, golden and quantization, zero-allocation, CLI (outputs against the goldens),
#             C API + ABI, install + consumers (C++, C), damaged files, real checkpoint shapes, the ROS
#             node against a real roscore, and the CUDA backend on the CPU emulation of CUDA (every
#             CUDA op and the device suite, threads of a block in forward and in reverse order)
#   asan      the same suites and CLI tests under ASan + UBSan (leak checking on; only the
#             out-of-memory test may see a failed allocation as null), the CUDA emulation in one order
#   tsan      sessions on many threads over one model under ThreadSanitizer (the "threads" suite, in a
#             binary of its own; the "pool" suite is left to release and asan: pthreadpool is not
#             instrumented)
#   fuzz      each libFuzzer target for FUZZ_SECONDS (default 30) on its committed seed corpus
#   aarch64   the kernel, op, golden, batch, vector and spec suites cross-built for aarch64 and run
#             under qemu-user on three emulated CPUs (Cortex-A53, Cortex-A76, max), one per NEON kernel
#             table (neon, neon-dotprod, neon-i8mm), with Debian's arm64 libraries in a private sysroot
#   cuda      where nvcc exists: the CUDA backend built (sm_87/90/110 + PTX), the CLI test on that
#             build, and the CUDA suite where a device is present (listed as NOT RUN where none is)
# Every optional library must be there (RILL_REQUIRE_DEPS): none silently drops tests. Each test binary
# reports the cases it ran per suite; a stage where a suite it must run ran none fails. The summary
# gives each stage's time, the cases per suite, the kernel tables that ran, and what could not run here.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
reports=$(mktemp -d /tmp/rill-test-XXXXXX)
trap 'rm -rf "$reports"' EXIT
stage_names=()
stage_secs=()
failed_stage=""
t_start=$(date +%s)

# Suites every stage that runs the whole suite must run (a renamed or dropped suite fails the stage).
all_suites="arch batch converter core device format golden kernels npy ops oom pool quant sampler session spec threads tokenizer vector"
# The CUDA backend's suites on the CPU emulation of CUDA (rill_cuda_emu_tests).
cuda_emu_suites="cuda_emu_ops cuda_emu_device"
# The sanitizer builds at -O1 with line tables only: what ASan and TSan recommend, and half the compile
# time of -O2 -g with the same findings.
san_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
           "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG")

summary() {
  local total=$(( $(date +%s) - t_start ))
  echo
  echo "== summary"
  for i in "${!stage_names[@]}"; do
    printf '  %-9s %5d s\n' "${stage_names[$i]}" "${stage_secs[$i]}"
  done
  printf '  %-9s %5d s (%d min %d s)\n' total "$total" $((total / 60)) $((total % 60))
  for dir in "$reports"/*/; do
    [ -d "$dir" ] || continue
    local s
    s=$(basename "$dir")
    if compgen -G "$dir/suites-*.txt" >/dev/null; then
      echo "  $s: test cases per suite: $(cat "$dir"/suites-*.txt | awk '{n[$1] += $2} END {for (k in n) printf "%s %d, ", k, n[k]}' | sed 's/, $//')"
    fi
    [ -f "$dir/tables.txt" ] && sort -u "$dir/tables.txt" | sed "s/^/  $s: /"
    [ -f "$dir/not_run.txt" ] && sort -u "$dir/not_run.txt" | sed "s/^/  $s: NOT RUN: /"
  done
  if [ -n "$failed_stage" ]; then
    echo "FAILED in stage $failed_stage"
  fi
  return 0
}
trap 'failed_stage=${current:-setup}; summary; rm -rf "$reports"' ERR

# Runs a stage: its commands with RILL_TEST_REPORT_DIR set, its time recorded.
current=""
run_stage() {
  current=$1
  shift
  echo "== $current" >&2
  mkdir -p "$reports/$current"
  local t0
  t0=$(date +%s)
  export RILL_TEST_REPORT_DIR="$reports/$current"
  "$@"
  unset RILL_TEST_REPORT_DIR
  stage_names+=("$current")
  stage_secs+=($(( $(date +%s) - t0 )))
}

# Fails unless every suite named ran at least one case in the stage's reports.
expect_suites() {
  local stage=$1
  shift
  local missing=()
  for s in "$@"; do
    local n
    n=$(cat "$reports/$stage"/suites-*.txt 2>/dev/null | awk -v s="$s" '$1 == s {n += $2} END {print n + 0}')
    [ "$n" -gt 0 ] || missing+=("$s")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "stage $stage: these suites ran no test case: ${missing[*]}" >&2
    return 1
  fi
}

# Fails unless every suite the binary holds is among the names given (a new suite must be listed).
expect_known_suites() {
  local binary=$1
  shift
  local listed
  listed=$("$binary" --list-test-suites --no-colors | sed -n 's/^\([a-z_][a-z_0-9]*\)$/\1/p')
  for s in $listed; do
    case " $* " in *" $s "*) ;; *) echo "test suite '$s' is not in scripts/test.sh's list" >&2; return 1 ;; esac
  done
}

ctest_stage() {  # ctest in a build folder; its output kept for the summary
  (cd "$1" && ctest --output-on-failure -j 2 "${@:2}") | tee "$reports/$current/ctest.txt"
}

release() {
  BUILD_DIR=build scripts/build.sh -DRILL_BUILD_TESTS=ON -DRILL_SANITIZE=OFF -DRILL_ROS=ON -DRILL_CUDA=OFF \
    -DRILL_REQUIRE_DEPS=ON
  expect_known_suites build/tests/rill_tests $all_suites
  expect_known_suites build/tests/rill_cuda_emu_tests $cuda_emu_suites
  ctest_stage build
  expect_suites release $all_suites alloc $cuda_emu_suites ros_free
}

asan() {
  BUILD_DIR=build-asan BUILD_TYPE=RelWithDebInfo scripts/build.sh "${san_flags[@]}" -DRILL_BUILD_TESTS=ON \
    -DRILL_SANITIZE=ON -DRILL_BUILD_EXAMPLES=OFF -DRILL_REQUIRE_DEPS=ON
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 ctest_stage build-asan
  expect_suites asan $all_suites $cuda_emu_suites
}

tsan() {
  cmake -S . -B build-tsan -G Ninja "${san_flags[@]}" -DRILL_TSAN=ON -DRILL_BUILD_TESTS=ON \
    -DRILL_BUILD_EXAMPLES=OFF -DRILL_REQUIRE_DEPS=ON >/dev/null
  cmake --build build-tsan --target rill_threads_tests -j "$(nproc)"
  TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/rill_threads_tests --test-suite=threads
  expect_suites tsan threads
}

cuda() {
  # The release build again with the CUDA backend (only the registry and the CUDA file compile anew).
  cmake -S . -B build -DRILL_CUDA=ON -DCMAKE_CUDA_COMPILER="$1" >/dev/null
  cmake --build build -j "$(nproc)" --target rill_cli rill_cuda_tests npy_compare
  local version
  version=$(build/bin/rill --version)
  echo "$version"
  # Without a device the CUDA suite is not started at all (ctest would count it "Skipped"): the summary
  # lists it as NOT RUN, and the CLI test on this build checks that --backend cuda is refused.
  if grep -q '^cuda: no CUDA device' <<<"$version"; then
    echo "cuda: the CUDA device suite (rill_cuda_tests): no CUDA device here" >> "$reports/cuda/not_run.txt"
    ctest_stage build -R '^cli$'
  else
    ctest_stage build -R '^(cli|cuda)$'
  fi
}

run_stage setup scripts/setup.sh ros
run_stage release release
run_stage asan asan
run_stage tsan tsan
run_stage fuzz scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
run_stage aarch64 scripts/test_arm64.sh
expect_suites aarch64 kernels ops golden batch vector spec
nvcc=$(command -v nvcc || true)
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
if [ -n "$nvcc" ]; then
  run_stage cuda cuda "$nvcc"
else
  mkdir -p "$reports/cuda"
  echo "cuda: the CUDA backend build and its suite (no nvcc on this machine)" >> "$reports/cuda/not_run.txt"
fi
trap - ERR
summary
passed=$(cat "$reports"/*/ctest.txt | grep -o '[0-9]* tests failed out of [0-9]*' | awk '{s += $NF} END {print s + 0}')
skipped=$(cat "$reports"/*/ctest.txt | grep -c '(Skipped)' || true)
not_run=$(cat "$reports"/*/not_run.txt 2>/dev/null | wc -l)
emu_cases=$(cat "$reports"/*/suites-*.txt 2>/dev/null | awk '$1 ~ /^cuda_emu_/ {n += $2} END {print n + 0}')
echo "all stages green: $((passed - skipped)) ctest tests passed, $skipped skipped, $not_run not run (listed above);" \
     "TSan threads suite, 4 fuzz targets, aarch64 suites under qemu on 3 CPUs;" \
     "$emu_cases CUDA test cases run on the CUDA emulation (both thread orders, and under ASan + UBSan)"
