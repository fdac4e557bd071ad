// rill bench --streams and --soak: many streams of one model in one pass, and a long run of one.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "bench.h"

namespace rill {
namespace cli {

namespace {
// Sessions that run past a context limit (Mamba-2 hybrids) rather than stop at it.
SessionOptions sliding() {
  SessionOptions so;
  so.context_full = ContextFull::kSlide;
  return so;
}
}  // namespace

// Long-run stability: n steps of one session on one thread, each timed; resident memory sampled ten
// times. Drift in the time per step or growth in memory over a million steps is what a control loop
// or a long-lived server would meet. Ctrl-C stops it early and reports the steps that ran (exit 130).
int soak(const Model& model, size_t n, bool json, const std::string& label) {
  const size_t every = std::max<size_t>(n / 10, 1);
  OwnedSession os;
  Error e;
  if (OwnedSession::create(model, sliding(), &os, &e) != Status::kOk) return report(e, "session");
  Feed feed(model.info());
  std::vector<float> ms(n);
  std::vector<uint64_t> rss;
  for (int i = 0; i < 100; ++i) (void)feed.run(os.session());  // warm up
  install_sigint();
  const uint64_t rss_start = rss_bytes();
  const double t0 = now_s();
  size_t done = 0;  // fewer than n after Ctrl-C
  for (; done < n && !g_interrupted; ++done) {
    feed.prepare(done);
    const double s0 = now_s();
    if (feed.run(os.session()) != Status::kOk) return 1;
    ms[done] = static_cast<float>((now_s() - s0) * 1e3);
    if ((done + 1) % every == 0) rss.push_back(rss_bytes());
  }
  if (done == 0) return 130;
  n = done;
  const size_t window = std::min<size_t>(10000, std::max<size_t>(n / 2, 1));
  const double total_s = now_s() - t0;
  auto mean = [&](size_t b, size_t e2) {
    double sum = 0;
    for (size_t i = b; i < e2; ++i) sum += ms[i];
    return sum / static_cast<double>(e2 - b);
  };
  const double first = mean(0, window), last = mean(n - window, n);
  const uint64_t rss_end = rss_bytes(), rss_max = rss.empty() ? rss_end : *std::max_element(rss.begin(), rss.end());
  if (json) {
    const nlohmann::json j = {{"model", label},           {"soak_steps", n},
                              {"seconds", total_s},       {"window", window},
                              {"first_window_mean_ms", first}, {"last_window_mean_ms", last},
                              {"rss_start_bytes", rss_start}, {"rss_end_bytes", rss_end},
                              {"rss_max_sampled_bytes", rss_max}, {"rss_samples_bytes", rss}};
    print_json_line(j);
  } else {
    std::printf("\nsoak: %zu steps in %.1f s on one thread\n", n, total_s);
    std::printf("  mean ms/step, first %zu steps %.4f, last %zu steps %.4f (%+.1f %%)\n", window, first, window, last,
                100 * (last - first) / first);
    std::printf("  resident memory at start %s, at end %s, highest of 10 samples %s\n", human_bytes(rss_start).c_str(),
                human_bytes(rss_end).c_str(), human_bytes(rss_max).c_str());
    std::printf("  every %zu steps (KiB):", every);
    for (uint64_t r : rss) std::printf(" %llu", static_cast<unsigned long long>(r / 1024));
    std::printf("\n");
  }
  return g_interrupted ? 130 : 0;
}

// Many streams of one model advanced together (Batch::step, or Batch::step_vectors for a vector
// model): aggregate steps/s and the time of one
// batched step (every stream's latency), per thread count and stream count.
int bench_streams(const Model& model, const std::vector<long long>& thread_counts,
                  const std::vector<long long>& streams, long long n_steps, bool json, const std::string& label) {
  const ModelInfo info = model.info();
  struct Row {
    long long threads, n;
    double steps_per_s, median, p99;
  };
  std::vector<Row> rows;
  Error e;
  for (long long nt : thread_counts) {
    ThreadPool* pool = nullptr;
    if (!create_pool("bench", nt, &pool)) return 1;
    for (long long n : streams) {
      std::vector<OwnedSession> sessions(static_cast<size_t>(n));
      std::vector<Session*> ptrs;
      for (OwnedSession& os : sessions) {
        if (OwnedSession::create(model, sliding(), &os, &e) != Status::kOk) return report(e, "session");
        ptrs.push_back(&os.session());
      }
      BatchOptions bo;
      bo.pool = pool;
      bo.max_streams = static_cast<uint32_t>(n);
      OwnedBatch owned;
      if (OwnedBatch::create(model, bo, &owned, &e) != Status::kOk) return report(e, "batch");
      Batch& batch = owned.get();
      // Token models: a token per stream (Batch::step); vector models: a vector per stream, a slow
      // sine per channel (Batch::step_vectors).
      const size_t din = info.d_input;
      std::vector<int32_t> toks(din ? 0 : static_cast<size_t>(n));
      std::vector<float> inputs(static_cast<size_t>(n) * din);
      std::vector<float> outputs(static_cast<size_t>(n) * info.d_output);
      auto next = [&](long long step) {
        for (size_t i = 0; i < toks.size(); ++i)
          toks[i] = static_cast<int32_t>((step * 7 + static_cast<long long>(i) * 13 + 3) % info.vocab_size);
        for (size_t i = 0; i < inputs.size(); ++i)
          inputs[i] = static_cast<float>(std::sin(0.01 * static_cast<double>(step) + 0.7 * static_cast<double>(i)));
      };
      auto one_step = [&] {
        return din ? batch.step_vectors(ptrs.data(), inputs.data(), ptrs.size(), inputs.size(), outputs.data(),
                                        outputs.size())
                   : batch.step(ptrs.data(), toks.data(), toks.size(), outputs.data(), outputs.size());
      };
      for (int w = 0; w < 4; ++w) {
        next(w);
        if (const Status st = one_step(); st != Status::kOk) {
          std::fprintf(stderr, "rill bench: batch step failed: %s\n", status_str(st));
          return 1;
        }
      }
      std::vector<double> ms(static_cast<size_t>(n_steps));
      const double t0 = now_s();
      for (long long i = 0; i < n_steps; ++i) {
        next(i);
        const double s0 = now_s();
        (void)one_step();
        ms[static_cast<size_t>(i)] = (now_s() - s0) * 1e3;
      }
      const double secs = now_s() - t0;
      std::sort(ms.begin(), ms.end());
      rows.push_back(Row{nt, n, n * n_steps / secs, ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]});
      if (g_interrupted) break;
    }
    ThreadPool::destroy(pool);
  }
  auto base = [&](const Row& r) {  // the one-stream row of the same thread count, if measured
    for (const Row& b : rows)
      if (b.threads == r.threads && b.n == 1) return b.steps_per_s;
    return 0.0;
  };
  if (json) {
    for (const Row& r : rows) {
      nlohmann::json j = {{"model", label},           {"arch", arch_name(info.arch)},
                          {"backend", info.backend},  {"threads", r.threads},
                          {"streams", r.n},           {"aggregate_steps_per_s", r.steps_per_s},
                          {"step_ms_median", r.median}, {"step_ms_p99", r.p99}};
      if (base(r) > 0) j["speedup_vs_1_stream"] = r.steps_per_s / base(r);
      print_json_line(j);
    }
  } else {
    std::printf("\n| model | threads | streams | aggregate steps/s | per-stream latency median (ms) | p99 | vs 1 stream |\n"
                "|---|---|---|---|---|---|---|\n");
    for (const Row& r : rows) {
      char speedup[32] = "";
      if (base(r) > 0) std::snprintf(speedup, sizeof speedup, "%.2fx", r.steps_per_s / base(r));
      std::printf("| %s | %lld | %lld | %.1f | %.3f | %.3f | %s |\n", label.c_str(), r.threads, r.n, r.steps_per_s,
                  r.median, r.p99, speedup);
    }
    std::printf("(%s: every stream advances one %s per step, weights read once for all of them)\n",
                info.d_input ? "Batch::step_vectors" : "Batch::step", info.d_input ? "input vector" : "token");
  }
  return g_interrupted ? 130 : 0;
}

}  // namespace cli
}  // namespace rill
