// What the rill commands share (common.h).
#include "common.h"
#include "rill_generated.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <thread>

namespace rill {
namespace cli {

std::atomic<bool> g_interrupted{false};

namespace {
void on_sigint(int) { g_interrupted = true; }

// Physical cores this process may run on: distinct (package, core) pairs among its allowed CPUs, so
// SMT siblings count once. Falls back to the logical count where sysfs does not say.
int physical_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::pair<int, int>> cores;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    auto read_int = [&](const char* what) {
      const std::string p = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/" + what;
      FILE* f = std::fopen(p.c_str(), "r");
      int v = -1;
      if (f) {
        if (std::fscanf(f, "%d", &v) != 1) v = -1;
        std::fclose(f);
      }
      return v;
    };
    const int pkg = read_int("physical_package_id"), core = read_int("core_id");
    if (pkg < 0 || core < 0) return std::max(1, CPU_COUNT(&set));
    if (std::find(cores.begin(), cores.end(), std::make_pair(pkg, core)) == cores.end()) cores.push_back({pkg, core});
  }
  return std::max<int>(1, static_cast<int>(cores.size()));
}
}  // namespace

void install_sigint() { std::signal(SIGINT, on_sigint); }

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int report(const Error& e, const char* what) {
  std::fprintf(stderr, "rill: %s: %s (%s)\n", what, e.message, status_str(e.status));
  return 1;
}

std::string human_bytes(uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", b / double(1ull << 30));
  else if (b >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.2f MiB", b / double(1ull << 20));
  else if (b >= 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else std::snprintf(buf, sizeof buf, "%" PRIu64 " B", b);
  return buf;
}

void print_json_line(const nlohmann::json& j) {
  std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

bool read_whole_file(const std::string& path, std::string* out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char buf[65536];
  size_t n;
  out->clear();
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  const bool ok = !std::ferror(f);
  std::fclose(f);
  return ok;
}

Opt model_opt() { return {"-m", "--model", "FILE", "model file (or give it as the first argument)", "", "RILL_MODEL"}; }
Opt backend_opt() {
  return {nullptr, "--backend", "NAME", "compute backend: cpu | cuda (the backends this build has: rill --version)", "cpu",
          "RILL_BACKEND"};
}
Opt device_opt() { return {nullptr, "--device", "N", "GPU index for a GPU backend", "0"}; }
Opt threads_opt() {
  static const std::string def = std::to_string(physical_cores());
  return {"-t", "--threads", "N", "worker threads for the matrix products (default: this machine's physical cores)",
          def, "RILL_THREADS"};
}

Opt context_opt() {
  return {nullptr, "--max-context", "N", "Mamba-2 hybrids: tokens a stream's attention holds, which sizes the\n"
          "                                 state (0: the file's default)", "0"};
}

std::string context_note(const LoadedModel& lm) {
  const ModelInfo in = lm.model().info();
  const fb::Model* m = fb::GetSizePrefixedModel(lm.file().data());
  const fb::Mamba2HybridParams* p = m->params_as_Mamba2HybridParams();
  if (!in.max_context || !p || !m->layers()) return "";
  uint64_t attn = 0, mixers = 0;
  for (const fb::Layer* l : *m->layers()) {
    attn += l->kind() == fb::LayerKind::AttentionBlock;
    mixers += l->kind() == fb::LayerKind::AttentionBlock || l->kind() == fb::LayerKind::Mamba2Mixer;
  }
  const uint64_t per_token = 2ull * p->kv_heads() * p->attn_head_dim() * (p->kv_dtype() == fb::DType::F16 ? 2 : 4);
  const uint64_t c = in.max_context;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%u tokens per stream: the %" PRIu64 " attention layers' keys and values are %s of the %s state;\n"
                "              a Transformer of the same shape (%" PRIu64 " attention layers) would hold %s at %u "
                "tokens, %s at 32k",
                in.max_context, attn, human_bytes(attn * per_token * c).c_str(), human_bytes(in.state_bytes).c_str(),
                mixers, human_bytes(mixers * per_token * c).c_str(), in.max_context,
                human_bytes(mixers * per_token * 32768).c_str());
  return buf;
}

bool model_options(Args& a, ModelOptions* o) {
  *o = ModelOptions{};
  if (a.find("--max-context")) {
    long long c = 0;
    if (!parse_int(a.get("--max-context"), 0, 1 << 20, &c)) {
      std::fprintf(stderr, "rill %s: --max-context wants 0 (the file's) to 1048576 tokens (got '%s')\n", a.cmd,
                   a.get("--max-context").c_str());
      return false;
    }
    o->max_context = static_cast<uint32_t>(c);
  }
  if (!a.find("--backend")) return true;
  const std::string b = a.get("--backend");
  long long dev = 0;
  if (b == "cpu") o->backend = Backend::kCpu;
  else if (b == "cuda") o->backend = Backend::kCuda;
  else {
    std::fprintf(stderr, "rill %s: --backend wants cpu or cuda (got '%s')\n", a.cmd, b.c_str());
    return false;
  }
  if (a.find("--device") && !parse_int(a.get("--device"), 0, 1024, &dev)) {
    std::fprintf(stderr, "rill %s: --device wants a GPU index (got '%s')\n", a.cmd, a.get("--device").c_str());
    return false;
  }
  o->device = static_cast<int32_t>(dev);
  return true;
}

int open_model(Args& a, LoadedModel* lm, Takes takes) {
  std::string path = a.find("--model") ? a.get("--model") : "";
  if (path.empty() && !a.positional.empty()) path = a.positional[0];
  if (path.empty()) {
    std::fprintf(stderr, "rill %s: no model given\nexample: %s\n", a.cmd, a.example);
    return 2;
  }
  ModelOptions mo;
  if (!model_options(a, &mo)) return 2;
  Error e;
  if (LoadedModel::open(path.c_str(), mo, lm, &e) != Status::kOk) return report(e, path.c_str());
  const ModelInfo in = lm->model().info();
  if (takes == Takes::kTokens && in.d_input) {
    std::fprintf(stderr, "rill %s: %s takes float vectors (%u in, %u out), not tokens: use rill stream\n", a.cmd,
                 path.c_str(), in.d_input, in.d_output);
    return 1;
  }
  if (takes == Takes::kVectors && !in.d_input) {
    std::fprintf(stderr, "rill %s: %s is a token model (vocabulary %u): use rill run, logits or eval\n", a.cmd,
                 path.c_str(), in.vocab_size);
    return 1;
  }
  return 0;
}

bool create_pool(const char* cmd, long long n, ThreadPool** pool) {
  *pool = nullptr;
  if (n <= 1) return true;
  const Status s = ThreadPool::create(static_cast<size_t>(n), pool);
  if (s != Status::kOk) std::fprintf(stderr, "rill %s: cannot create %lld threads (%s)\n", cmd, n, status_str(s));
  return s == Status::kOk;
}

bool make_pool(Args& a, ThreadPool** pool) {
  long long n;
  *pool = nullptr;
  if (!parse_int(a.get("--threads"), 1, 1024, &n)) {
    std::fprintf(stderr, "rill %s: --threads wants a positive integer\n", a.cmd);
    return false;
  }
  return create_pool(a.cmd, n, pool);
}

int make_session(Args& a, const Model& m, ThreadPool** pool, OwnedSession* os) {
  if (!make_pool(a, pool)) return 2;
  SessionOptions so;
  so.pool = *pool;
  if (a.find("--slide") && a.flag("--slide")) so.context_full = ContextFull::kSlide;
  if (a.find("--chunked-prefill") && a.flag("--chunked-prefill")) so.chunked_prefill = true;
  Error e;
  if (OwnedSession::create(m, so, os, &e) != Status::kOk) return report(e, "session");
  return 0;
}

bool parse_int_list(const std::string& s, long long lo, long long hi, std::vector<long long>* out) {
  for (const std::string& item : split(s)) {
    long long v;
    if (!parse_int(item, lo, hi, &v)) return false;
    out->push_back(v);
  }
  return true;
}

bool parse_tokens(const std::string& s, std::vector<int32_t>* out) {
  std::vector<long long> v;
  if (!parse_int_list(s, INT32_MIN, INT32_MAX, &v)) return false;
  out->assign(v.begin(), v.end());
  return !out->empty();
}

bool text_to_tokens(const Model& m, const std::string& text, std::vector<int32_t>* out) {
  size_t n = 0;
  Status st = tokenize(m, text.data(), text.size(), nullptr, 0, &n);
  if (st == Status::kUnsupported || st == Status::kBadState) return false;
  out->resize(n);
  return tokenize(m, text.data(), text.size(), out->data(), out->size(), &n) == Status::kOk;
}

}  // namespace cli
}  // namespace rill
