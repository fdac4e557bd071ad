// rill bench's parts (bench.cc: the command; bench_probe.cc: the machine's read bandwidth and the
// bytes a step moves; bench_streams.cc: many streams in one pass, and the long-run soak).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common.h"
#include "rill_generated.h"

namespace rill {
namespace cli {

// Sequential-read bandwidth of this machine: the best of 5 passes summing `bytes` with `threads`.
double probe_read_gbs(size_t bytes, int threads);
// Weight bytes one decode step reads: every tensor, except an untied embedding (one row is gathered).
uint64_t bytes_per_token(const fb::Model* m);
// Resident memory now (not the peak), from /proc/self/statm.
uint64_t rss_bytes();

// Deterministic inputs for timing runs: a token id, or a vector for a vector model; prepare() fills
// step i's input outside the timed region, run() steps the session with it.
struct Feed {
  ModelInfo info;
  int32_t tok = 1;
  std::vector<float> x, out;
  explicit Feed(const ModelInfo& i) : info(i), x(i.d_input), out(i.d_input ? i.d_output : i.vocab_size) {}
  void prepare(size_t i) {
    if (!info.d_input) tok = static_cast<int32_t>((i * 7 + 3) % info.vocab_size);
    for (size_t c = 0; c < x.size(); ++c) x[c] = std::sin(0.01f * static_cast<float>(i) + static_cast<float>(c));
  }
  Status run(Session& s) {
    return info.d_input ? s.step_vector(x.data(), x.size(), out.data(), out.size())
                        : s.step(tok, out.data(), out.size());
  }
  Status prefill(Session& s, size_t n) {
    if (!info.d_input) {
      std::vector<int32_t> prompt(n);
      for (size_t i = 0; i < n; ++i) prompt[i] = static_cast<int32_t>((i * 13 + 5) % info.vocab_size);
      return s.prefill(prompt.data(), n, out.data(), out.size());
    }
    std::vector<float> v(n * x.size());
    for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.37f * static_cast<float>(i));
    return s.prefill_vectors(v.data(), n, v.size(), out.data(), out.size());
  }
};

// Long-run stability: n steps of one session on one thread (bench_streams.cc).
int soak(const Model& model, size_t n, bool json, const std::string& label);
// Many streams of one model advanced together (Batch::step), per thread count and stream count.
int bench_streams(const Model& model, const std::vector<long long>& thread_counts,
                  const std::vector<long long>& streams, long long n_steps, bool json, const std::string& label);

}  // namespace cli
}  // namespace rill
