#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for SECONDS (default 30) on a
# copy of its committed seed corpus, as many at once as there are cores. Fails on any finding (crash,
# leak, hang > 10 s, UB, abort).
# A longer run: scripts/fuzz.sh 3600
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
work="$(mktemp -d /tmp/rill-fuzz-run-XXXXXX)"
trap 'rm -rf "$work"' EXIT
if ! { CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRILL_FUZZ=ON \
         "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" \
         -DRILL_BUILD_TESTS=OFF -DRILL_BUILD_EXAMPLES=OFF -DRILL_REQUIRE_DEPS=ON &&
       cmake --build build-fuzz -j "$(nproc)" --target fuzz_model fuzz_checkpoint fuzz_state fuzz_tokenizer; } \
     >"$work/build.log" 2>&1; then
  echo "fuzz: the clang build failed" >&2
  grep -E -A12 'FAILED|error' "$work/build.log" | head -60 >&2
  exit 1
fi
# One target per core at a time (libFuzzer runs on one thread): each gets its SECONDS of a core.
jobs=$(nproc)
run_target() {
  local t=$1
  mkdir -p "$work/$t" "$work/$t-artifacts"
  cp -r tests/fuzz/corpus/$t/. "$work/$t/"
  echo "== fuzz_$t for ${secs}s" >&2
  build-fuzz/tests/fuzz/fuzz_$t "$work/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 \
    -max_len=262144 -print_final_stats=1 -artifact_prefix="$work/$t-artifacts/" >"$work/$t.log" 2>&1
}
status=0
targets=(model checkpoint state tokenizer)
for ((i = 0; i < ${#targets[@]}; i += jobs)); do
  batch=("${targets[@]:i:jobs}")
  pids=()
  for t in "${batch[@]}"; do
    run_target "$t" &
    pids+=($!)
  done
  for k in "${!batch[@]}"; do
    t=${batch[$k]}
    if ! wait "${pids[$k]}"; then
      status=1
      echo "fuzz_$t: FINDING" >&2
      tail -40 "$work/$t.log" >&2
      mkdir -p out/fuzz-findings && cp -r "$work/$t-artifacts" out/fuzz-findings/ || true
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz_$t: $runs executions in ${secs}s" >&2
  done
done
exit $status
