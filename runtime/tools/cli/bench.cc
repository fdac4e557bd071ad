// rill bench: decode and prefill speed, bytes per token and their share of the read bandwidth, peak
// memory; then, on request, many streams (bench_streams.cc) and a soak.
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <map>

#include "backend/backend.h"
#include "bench.h"
#include "core/model_impl.h"
#include "rill/convert.hpp"

namespace rill {
namespace cli {

int cmd_bench(int argc, char** argv) {
  Args a{"bench", "(MODEL.rill | --random ARCH:key=value,...) [options]",
         "Decode and prefill speed: tokens/s, time per token (median, p99), bytes moved per token (weights\n"
         "read plus state read and written), achieved GB/s and percent of this machine's read bandwidth\n"
         "(measured here by a probe), peak RSS.\n"
         "--random builds a random-weight model of any shape (a bf16 checkpoint in a temporary folder,\n"
         "converted with --dtype), so no checkpoint is needed.",
         "rill bench --random mamba1:d_model=768,n_layer=24,vocab=50280 --dtype q8",
         {model_opt(),
          {nullptr, "--random", "SPEC", "ARCH:key=value,... e.g. mamba1:d_model=2048,n_layer=48,vocab=50280\n"
           "                                 or s4d:d_model=256,n_layer=4,d_state=64,d_input=8,d_output=8\n"
           "                                 or recurrent_gemma: (recurrentgemma-2b's shape; d_model, n_layer, vocab,\n"
           "                                 lru_width, d_ffn, heads, kv_heads, window, conv to change it)", ""},
          {nullptr, "--dtype", "TYPE", "weights of the --random model: f32 | f16 | q8 | q4", "q8"},
          backend_opt(), device_opt(), context_opt(),
          {"-n", "--tokens", "N", "decode steps timed", "128"},
          {nullptr, "--prefill", "N", "prompt length timed for prefill", "512"},
          {nullptr, "--context", "N", "tokens prefilled (untimed) before decode is timed: decode at that position\n"
           "                                 (for RecurrentGemma, a full attention window)", "0"},
          {nullptr, "--chunk", "LIST", "prefill chunk sizes (tokens per forward pass) to time, e.g. 8,16,32,64\n"
           "                                 (default: the session default)", ""},
          {nullptr, "--chunked-prefill", nullptr, "prefill in the chunked form where the CPU takes it (the wkv family's\n"
           "                                 heads of 128+ keys on AVX-512, Mamba-2's SSD on AVX2 and AVX-512;\n"
           "                                 SessionOptions::chunked_prefill)", ""},
          {nullptr, "--probe-mb", "MB", "size of the bandwidth probe buffer; auto: the bytes one decode step\n"
           "                                 moves (so the probe reads from the cache level or DRAM the model\n"
           "                                 itself reads from)", "auto"},
          {"-t", "--threads", "LIST", "thread counts to measure, e.g. 1,2", "1,2"},
          {nullptr, "--streams", "LIST", "then many streams in one pass (Batch::step; step_vectors for a\n"
           "                                 vector model), e.g. 1,4,16,64: aggregate steps/s and per-stream\n"
           "                                 latency (empty: off)", ""},
          {nullptr, "--soak", "N", "afterwards, step one session N times on one thread and compare the first\n"
           "                                 and last 10,000 steps' mean time and the resident memory (0: off)", "0"},
          {"-o", "--output", "FORMAT", "md | json", "md"}}};
  if (int r = a.parse(argc, argv)) return r == 1 ? 0 : r;
  long long n_tok, n_pre, probe_mb = 0, n_soak, n_ctx;
  if (!int_option(a, "--tokens", 1, 1 << 24, &n_tok) || !int_option(a, "--prefill", 0, 1 << 24, &n_pre) ||
      !int_option(a, "--context", 0, 1 << 24, &n_ctx) || !int_option(a, "--soak", 0, 1ll << 32, &n_soak) ||
      (a.get("--probe-mb") != "auto" && !int_option(a, "--probe-mb", 16, 1 << 16, &probe_mb)))
    return 2;
  if (a.get("--output") != "md" && a.get("--output") != "json") {
    std::fprintf(stderr, "rill bench: --output wants md or json, got '%s'\n", a.get("--output").c_str());
    return 2;
  }
  std::string path = a.get("--model");
  if (path.empty() && !a.positional.empty()) path = a.positional[0];
  std::string tmpdir, label = path;
  if (a.flag("--random")) {
    const std::string spec = a.get("--random");
    const size_t colon = spec.find(':');
    std::map<std::string, uint64_t> kv;
    for (const std::string& item : split(colon == std::string::npos ? "" : spec.substr(colon + 1))) {
      const size_t eq = item.find('=');
      long long v;
      if (eq == std::string::npos || !parse_int(item.substr(eq + 1), 0, 1ll << 40, &v)) {
        std::fprintf(stderr, "rill bench: --random wants ARCH:key=value,... (got '%s')\n", item.c_str());
        return 2;
      }
      kv[item.substr(0, eq)] = static_cast<uint64_t>(v);
    }
    char tmpl[] = "/tmp/rill-bench-XXXXXX";
    if (!mkdtemp(tmpl)) {
      std::fprintf(stderr, "rill bench: cannot create a temporary folder\n");
      return 1;
    }
    tmpdir = tmpl;
    try {
      convert::write_random_checkpoint(spec.substr(0, colon), kv, tmpdir + "/ckpt");
      convert::Options o;
      o.input_dir = tmpdir + "/ckpt";
      o.output = tmpdir + "/model.rill";
      o.dtype = a.get("--dtype");
      o.quiet = true;
      convert::run(o);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rill bench: %s\n", e.what());
      std::error_code ec;
      std::filesystem::remove_all(tmpdir, ec);
      return 1;
    }
    path = tmpdir + "/model.rill";
    label = spec + " " + a.get("--dtype");
  }
  if (path.empty()) {
    std::fprintf(stderr, "rill bench: give a model or --random\nexample: %s\n", a.example);
    return 2;
  }
  LoadedModel lm;
  Error e;
  ModelOptions mo;
  if (!model_options(a, &mo)) {
    if (!tmpdir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(tmpdir, ec);
    }
    return 2;
  }
  const Status st = LoadedModel::open(path.c_str(), mo, &lm, &e);
  if (!tmpdir.empty()) {  // the mapping stays valid
    std::error_code ec;
    std::filesystem::remove_all(tmpdir, ec);
  }
  if (st != Status::kOk) return report(e, path.c_str());
  const ModelInfo info = lm.model().info();
  std::vector<long long> thread_counts, streams;
  if (!parse_int_list(a.get("--threads"), 1, 1024, &thread_counts) || thread_counts.empty()) {
    std::fprintf(stderr, "rill bench: --threads wants a list like 1,2\n");
    return 2;
  }
  std::vector<long long> chunks;
  if (!parse_int_list(a.get("--chunk"), 1, 4096, &chunks)) {
    std::fprintf(stderr, "rill bench: --chunk wants a list like 8,16,32,64 (each 1 to 4096)\n");
    return 2;
  }
  if (chunks.empty()) chunks.push_back(SessionOptions{}.prefill_chunk);
  if (!parse_int_list(a.get("--streams"), 1, 4096, &streams)) {
    std::fprintf(stderr, "rill bench: --streams wants a list like 1,4,16,64 (each 1 to 4096)\n");
    return 2;
  }
  struct Row {
    long long threads;
    double tps, median, p99, p999, max, gbs, probe;
    std::vector<double> prefill_tps;  // per chunk size
  };
  std::vector<Row> rows;
  // What one decode step moves: the weights it reads, and every state tensor read and written.
  const uint64_t weight_bpt = bytes_per_token(fb::GetSizePrefixedModel(lm.file().data()));
  const uint64_t state_bpt = 2 * info.state_bytes, bpt = weight_bpt + state_bpt;
  Feed feed(info);
  // A device backend: its own bandwidth probe, the ops one recorded decode step replays, device memory.
  const DeviceHooks* dev = device_hooks(lm.model().impl()->backend);
  size_t graph_ops = 0, session_device_bytes = 0;
  for (long long nt : thread_counts) {
    ThreadPool* pool = nullptr;
    if (!create_pool("bench", nt, &pool)) return 1;
    SessionOptions so;
    so.context_full = ContextFull::kSlide;  // a context-limited model is timed past its limit too
    so.pool = pool;
    so.chunked_prefill = a.flag("--chunked-prefill");
    OwnedSession os;
    if (OwnedSession::create(lm.model(), so, &os, &e) != Status::kOk) return report(e, "session");
    if (dev) {
      graph_ops = dev->recorded_ops(*SessionAccess::device(os.session()), 0);
      (void)Session::device_footprint(lm.model(), so, &session_device_bytes);
    }
    // Decode: from --context tokens in, warm up, then time each step.
    if (n_ctx) (void)feed.prefill(os.session(), static_cast<size_t>(n_ctx));
    for (int i = 0; i < 8; ++i) (void)feed.run(os.session());
    std::vector<double> ms(static_cast<size_t>(n_tok));
    double decode_s = 0;
    for (long long i = 0; i < n_tok; ++i) {
      feed.prepare(static_cast<size_t>(i));
      const double s0 = now_s();
      (void)feed.run(os.session());
      ms[static_cast<size_t>(i)] = (now_s() - s0) * 1e3;
      decode_s += ms[static_cast<size_t>(i)] / 1e3;
    }
    std::sort(ms.begin(), ms.end());
    auto pct = [&](size_t per_mille) { return ms[std::min(ms.size() - 1, ms.size() * per_mille / 1000)]; };
    Row r{nt, n_tok / decode_s, ms[ms.size() / 2], pct(990), pct(999), ms.back(), 0, 0, {}};
    for (long long c : chunks) {  // a session per chunk size (it sizes the session's scratch)
      if (n_pre == 0) break;
      SessionOptions sc = so;
      sc.prefill_chunk = static_cast<uint32_t>(c);
      OwnedSession ps;
      if (OwnedSession::create(lm.model(), sc, &ps, &e) != Status::kOk) return report(e, "session");
      const double p0 = now_s();
      (void)feed.prefill(ps.session(), static_cast<size_t>(n_pre));
      r.prefill_tps.push_back(n_pre / (now_s() - p0));
    }
    r.gbs = bpt * r.tps / 1e9;
    rows.push_back(r);
    ThreadPool::destroy(pool);
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const double rss_mib = ru.ru_maxrss / 1024.0;  // before the probe's buffer
  // The probe reads as many bytes as one decode step moves (at least 16 MiB): a model that fits in
  // the last-level cache is compared with that cache's bandwidth, a larger one with DRAM's.
  // A device reads at least 256 MiB, past any GPU's L2.
  const size_t probe_bytes = a.get("--probe-mb") != "auto" ? static_cast<size_t>(probe_mb) << 20
                             : std::max<size_t>(bpt, dev ? size_t(256) << 20 : size_t(16) << 20);
  for (Row& r : rows)
    r.probe = dev ? dev->read_bandwidth(mo.device, probe_bytes) : probe_read_gbs(probe_bytes, static_cast<int>(r.threads));
  const char* unit = info.d_input ? "step" : "tok";
  if (a.get("--output") == "json") {
    for (const Row& r : rows) {  // one JSON object per line (per thread count)
      nlohmann::json by_chunk = nlohmann::json::object();
      for (size_t i = 0; i < r.prefill_tps.size(); ++i) by_chunk[std::to_string(chunks[i])] = r.prefill_tps[i];
      const nlohmann::json j = {{"model", label},
                                {"arch", arch_name(info.arch)},
                                {"backend", info.backend},
                                {"threads", r.threads},
                                {"decode_tokens_per_s", r.tps},
                                {"ms_per_token_median", r.median},
                                {"ms_per_token_p99", r.p99},
                                {"ms_per_token_p999", r.p999},
                                {"ms_per_token_max", r.max},
                                {"prefill_tokens", n_pre},
                                {"prefill_chunk", chunks[0]},
                                {"prefill_tokens_per_s", r.prefill_tps.empty() ? 0.0 : r.prefill_tps[0]},
                                {"prefill_tokens_per_s_by_chunk", by_chunk},
                                {"weight_bytes_per_token", weight_bpt},
                                {"state_bytes_per_token", state_bpt},
                                {"bytes_per_token", bpt},
                                {"achieved_gb_per_s", r.gbs},
                                {"probe_read_gb_per_s", r.probe},
                                {"probe_bytes", probe_bytes},
                                {"percent_of_read_bandwidth", 100 * r.gbs / r.probe},
                                {"peak_rss_mib", rss_mib},
                                {"file_bytes", info.file_bytes},
                                {"state_bytes", info.state_bytes}};
      nlohmann::json jj = j;
      if (dev) {
        jj["graph_launches_per_token"] = graph_ops ? 1 : 0;
        jj["graph_ops_per_token"] = graph_ops;
        jj["device_memory_bytes"] = info.weight_bytes + session_device_bytes;
      }
      print_json_line(jj);
    }
  } else {
    std::string pre_cols, pre_rule;
    for (long long c : chunks) {
      if (n_pre == 0) break;
      pre_cols += " prefill " + std::to_string(n_pre) + " " + unit + "/s (chunk " + std::to_string(c) + ") |";
      pre_rule += "---|";
    }
    std::printf("| model | threads | decode %s/s | ms/%s median | p99 | p99.9 | max |%s bytes/%s | "
                "GB/s | read BW (probe) | %% of BW | peak RSS |\n|---|---|---|---|---|---|---|%s---|---|---|---|---|\n",
                unit, unit, pre_cols.c_str(), unit, pre_rule.c_str());
    for (const Row& r : rows) {
      std::printf("| %s | %lld | %.1f | %.4f | %.4f | %.4f | %.4f |", label.c_str(), r.threads, r.tps, r.median, r.p99,
                  r.p999, r.max);
      for (double p : r.prefill_tps) std::printf(" %.1f |", p);
      std::printf(" %s | %.2f | %.1f GB/s | %.0f %% | %.1f MiB |\n", human_bytes(bpt).c_str(), r.gbs, r.probe,
                  100 * r.gbs / r.probe, rss_mib);
    }
    std::printf("(backend %s; bytes/%s = weights read %s + state read and written 2 x %s; probe over %s; file %s;\n"
                " peak RSS before the bandwidth probe)\n",
                info.backend, unit, human_bytes(weight_bpt).c_str(), human_bytes(info.state_bytes).c_str(),
                human_bytes(probe_bytes).c_str(), human_bytes(info.file_bytes).c_str());
    if (const std::string note = context_note(lm); !note.empty()) std::printf("(max context %s)\n", note.c_str());
    if (dev)
      std::printf("(device: %s per token = one CUDA graph launch of %zu ops (kernels and copies); device memory %s "
                  "= weights %s + session %s; threads do not apply)\n",
                  graph_ops ? "1 launch" : "eager launches", graph_ops,
                  human_bytes(info.weight_bytes + session_device_bytes).c_str(), human_bytes(info.weight_bytes).c_str(),
                  human_bytes(session_device_bytes).c_str());
  }
  if (!streams.empty()) {
    install_sigint();
    const int rc = bench_streams(lm.model(), thread_counts, streams, n_tok, a.get("--output") == "json", label);
    if (rc != 0) return rc;
  }
  if (n_soak > 0) return soak(lm.model(), static_cast<size_t>(n_soak), a.get("--output") == "json", label);
  return 0;
}

}  // namespace cli
}  // namespace rill
