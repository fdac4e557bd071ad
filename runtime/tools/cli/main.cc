// rill: one command-line entry with subcommands (convert, inspect, run, logits, eval).
// Text goes to stdout, flushed per token; logs, progress and closing figures go to stderr.
// Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted (partial output kept).
#include <sys/resource.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <thread>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "args.h"
#include "backend/backend.h"
#include "core/model_impl.h"
#include "core/tokenizer_view.h"
#include "rill/convert.hpp"
#include "rill/extension.hpp"
#include "rill/rill.hpp"
#include "rill_generated.h"
#include "safetensors.h"

using namespace rill;
using cli::Args;
using cli::Opt;

namespace {

std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted = true; }

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

// Opens the model named by the first positional argument (or -m).
enum class Takes { kAny, kTokens, kVectors };

// --backend and --device, on the commands that step a model.
Opt backend_opt() { return {nullptr, "--backend", "NAME", "compute backend: cpu | cuda (the backends this build has: rill --version)", "cpu", "RILL_BACKEND"}; }
Opt device_opt() { return {nullptr, "--device", "N", "GPU index for a GPU backend", "0"}; }

// The ModelOptions the command line asks for; false (usage error printed) on a bad value.
bool model_options(Args& a, ModelOptions* o) {
  *o = ModelOptions{};
  if (!a.find("--backend")) return true;
  const std::string b = a.get("--backend");
  long long dev = 0;
  if (b == "cpu") o->backend = Backend::kCpu;
  else if (b == "cuda") o->backend = Backend::kCuda;
  else {
    std::fprintf(stderr, "rill %s: --backend wants cpu or cuda (got '%s')\n", a.cmd, b.c_str());
    return false;
  }
  if (a.find("--device") && !cli::parse_int(a.get("--device"), 0, 1024, &dev)) {
    std::fprintf(stderr, "rill %s: --device wants a GPU index (got '%s')\n", a.cmd, a.get("--device").c_str());
    return false;
  }
  o->device = static_cast<int32_t>(dev);
  return true;
}

// Opens the model named by --model or the first argument; refuses (exit 1) a model of the other input
// kind with the command that fits it.
int open_model(Args& a, LoadedModel* lm, Takes takes = Takes::kAny) {
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

Opt threads_opt() {
  static const std::string def = std::to_string(physical_cores());
  return {"-t", "--threads", "N", "worker threads for the matrix products (default: this machine's physical cores)",
          def, "RILL_THREADS"};
}

// A pool for --threads N (null for 1). Exits the command with a usage error on a bad value.
// A pool of n threads (null for 1); false, with a message naming `cmd`, if it cannot be created.
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
  if (!cli::parse_int(a.get("--threads"), 1, 1024, &n)) {
    std::fprintf(stderr, "rill %s: --threads wants a positive integer\n", a.cmd);
    return false;
  }
  return create_pool(a.cmd, n, pool);
}

// One JSON object per line; paths are not always valid UTF-8, so bad bytes are replaced, not thrown on.
void print_json_line(const nlohmann::json& j) {
  std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

Opt model_opt() { return {"-m", "--model", "FILE", "model file (or give it as the first argument)", "", "RILL_MODEL"}; }

// ---- convert -------------------------------------------------------------------------------
int cmd_convert(int argc, char** argv) {
  Args a{"convert", "CHECKPOINT_DIR -o MODEL.rill [options]",
         "Convert a Hugging Face checkpoint folder (config.json + model.safetensors, or sharded\n"
         "model-*.safetensors with model.safetensors.index.json; f32/f16/bf16) into a rill model file.\n"
         "Every tensor name and shape is checked against config.json before anything is written; the\n"
         "output appears only when complete. Supported: Mamba-1 (HF MambaForCausalLM and mamba_ssm naming),\n"
         "Mamba-2 (HF Mamba2ForCausalLM and mamba_ssm naming), RWKV-7 (fla rwkv7-*-world layout, or BlinkDL\n"
         "naming as safetensors), RecurrentGemma (HF RecurrentGemmaForCausalLM). The tokenizer beside the checkpoint is embedded: rwkv_vocab_v20230424.txt\n"
         "(RWKV world), else tokenizer.json (byte-level BPE, e.g. GPT-NeoX for Mamba), else tokenizer.model\n"
         "(SentencePiece, e.g. RecurrentGemma).",
         "rill convert examples/demo_model/checkpoint -o demo.rill --dtype f16",
         {{"-o", "--output", "FILE", "output model file", ""},
          {nullptr, "--dtype", "TYPE",
           "dtype of the large matrices: f32 | f16 | q8 (int8, a scale per row) | q4 (int4 groups, f16 scales);\n"
           "                                 norms, A, D, conv stay f32; in q8/q4 Mamba's x_proj/dt_proj and RWKV-7's LoRAs\n"
           "                                 stay f16",
           "f32"},
          {nullptr, "--group", "N", "q4 group size: 32 | 64 | 128", "32"},
          {nullptr, "--quant-layout", "L", "q8/q4 byte order: rows16 (16 rows interleaved for the vector kernels;\n"
           "                                 file format 1.3) | rows (row by row, readable by format 1.2 readers)", "rows16"},
          {nullptr, "--kv-dtype", "TYPE", "RecurrentGemma's key/value ring buffers in the state: auto (f32 in f32 models,\n"
           "                                 else f16) | f32 | f16", "auto"},
          {nullptr, "--keep-float", "PATTERNS", "comma-separated globs of tensors kept in f16, e.g. 'head,layers.0.*'", ""},
          {nullptr, "--quantize", "PATTERNS", "comma-separated globs quantized even if sensitive by default", ""},
          {nullptr, "--report", "FILE", "write per-tensor dtype, bytes and relative RMS error as CSV, and a bar chart\n"
           "                                 of the error per layer beside it (FILE with .svg)", ""},
          {nullptr, "--tokenizer", "FILE", "auto (what the folder holds) | none | bytes | a tokenizer.json,\n"
                                              "                                 tokenizer.model or rwkv_vocab_*.txt file", "auto"},
          {"-f", "--force", nullptr, "overwrite an existing output file", ""},
          {nullptr, "--allow-unknown-config", nullptr, "convert even if config.json has fields rill does not know", ""},
          {"-q", "--quiet", nullptr, "no progress or summary", ""}}};
  if (int r = a.parse(argc, argv)) return r == 1 ? 0 : r;
  if (a.positional.size() != 1 || a.get("--output").empty()) {
    std::fprintf(stderr, "rill convert: need one checkpoint folder and -o FILE\nexample: %s\n", a.example);
    return 2;
  }
  convert::Options o;
  o.input_dir = a.positional[0];
  while (o.input_dir.size() > 1 && o.input_dir.back() == '/') o.input_dir.pop_back();
  o.output = a.get("--output");
  o.dtype = a.get("--dtype");
  o.tokenizer = a.get("--tokenizer");
  o.force = a.flag("--force");
  o.allow_unknown_config = a.flag("--allow-unknown-config");
  o.quiet = a.flag("--quiet");
  long long group;
  if (!cli::parse_int(a.get("--group"), 1, 1 << 20, &group)) {
    std::fprintf(stderr, "rill convert: --group wants 32, 64 or 128\n");
    return 2;
  }
  o.group = static_cast<uint32_t>(group);
  o.quant_layout = a.get("--quant-layout");
  o.kv_dtype = a.get("--kv-dtype");
  o.keep_float = cli::split(a.get("--keep-float"));
  o.quantize = cli::split(a.get("--quantize"));
  o.report = a.get("--report");
  o.command_line = "--dtype " + o.dtype +
                   (o.dtype == "q4" ? " --group " + std::to_string(o.group) : "") +
                   (o.dtype == "q8" || o.dtype == "q4" ? " --quant-layout " + o.quant_layout : "") +
                   (o.kv_dtype != "auto" ? " --kv-dtype " + o.kv_dtype : "") +
                   " --tokenizer " + o.tokenizer + (o.keep_float.empty() ? "" : " --keep-float " + a.get("--keep-float")) +
                   (o.quantize.empty() ? "" : " --quantize " + a.get("--quantize"));
  const double t0 = now_s();
  convert::Report r;
  try {
    r = convert::run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rill convert: %s\n", e.what());
    return 1;
  }
  if (!o.quiet) {
    const bool quant = o.dtype == "q8" || o.dtype == "q4";
    if (quant) std::fprintf(stderr, "  %-30s %-4s %12s %10s  %s\n", "tensor", "type", "bytes", "rel.err", "");
    uint64_t by[4] = {0, 0, 0, 0};
    double qerr_sum = 0, qerr_max = 0;
    size_t nq = 0;
    const char* names[4] = {"f32", "f16", "q8", "q4"};
    for (auto& t : r.tensors) {
      for (int k = 0; k < 4; ++k)
        if (t.dtype == names[k]) by[k] += t.bytes;
      if (quant && t.shape.size() == 2)
        std::fprintf(stderr, "  %-30s %-4s %12llu %10.2e  %s\n", t.name.c_str(), t.dtype.c_str(),
                     static_cast<unsigned long long>(t.bytes), t.rel_rms, t.note.c_str());
      if (t.dtype == "q8" || t.dtype == "q4") qerr_sum += t.rel_rms, qerr_max = std::max(qerr_max, t.rel_rms), ++nq;
    }
    std::fprintf(stderr,
                 "converted %s (%s) -> %s in %.1f s\n  %.2f M parameters, %zu tensors: f32 %s, f16 %s, q8 %s, q4 %s\n"
                 "  file %s, state %s per session\n",
                 o.input_dir.c_str(), r.source_format.c_str(), o.output.c_str(), now_s() - t0, r.params / 1e6,
                 r.tensors.size(), human_bytes(by[0]).c_str(), human_bytes(by[1]).c_str(), human_bytes(by[2]).c_str(),
                 human_bytes(by[3]).c_str(), human_bytes(r.file_bytes).c_str(), human_bytes(r.state_bytes).c_str());
    if (nq)
      std::fprintf(stderr, "  %zu quantized tensors: relative RMS error mean %.2e, max %.2e\n", nq, qerr_sum / nq, qerr_max);
  }
  return 0;
}

// ---- inspect -------------------------------------------------------------------------------
int cmd_inspect(int argc, char** argv) {
  Args a{"inspect", "MODEL.rill [options]",
         "Show a model file: architecture, hyper-parameters, tensors (dtype, shape, bytes), weight bytes,\n"
         "state bytes per session, session arena bytes and provenance. The file is fully verified first.",
         "rill inspect demo.rill --verify",
         {model_opt(), {nullptr, "--tensors", nullptr, "list every tensor", ""},
          {nullptr, "--verify", nullptr, "also recompute the weight checksum (reads every byte)", ""}}};
  if (int r = a.parse(argc, argv)) return r == 1 ? 0 : r;
  LoadedModel lm;
  if (int r = open_model(a, &lm)) return r;
  const ModelInfo in = lm.model().info();
  const fb::Model* m = fb::GetSizePrefixedModel(lm.file().data());
  size_t arena = 0, model_mem = 0;
  (void)Session::footprint(lm.model(), SessionOptions{}, &arena);
  (void)Model::footprint(lm.file().data(), lm.file().size(), &model_mem);
  std::printf("format        rill %u.%u\n", m->format_major(), m->format_minor());
  std::printf("architecture  %s\n", arch_name(in.arch));
  if (const auto* p = m->params_as_Mamba1Params())
    std::printf("hyper         d_model=%u n_layer=%u vocab=%u d_inner=%u d_state=%u d_conv=%u dt_rank=%u eps=%g"
                " tied_head=%d\n",
                p->d_model(), p->n_layer(), p->vocab_size(), p->d_inner(), p->d_state(), p->d_conv(), p->dt_rank(),
                static_cast<double>(p->norm_eps()), p->tied_head());
  if (const auto* p = m->params_as_Mamba2Params())
    std::printf("hyper         d_model=%u n_layer=%u vocab=%u d_inner=%u heads=%u head_dim=%u groups=%u d_state=%u"
                " d_conv=%u eps=%g dt_limit=[%g, %g] tied_head=%d\n",
                p->d_model(), p->n_layer(), p->vocab_size(), p->d_inner(), p->n_heads(), p->head_dim(), p->n_groups(),
                p->d_state(), p->d_conv(), static_cast<double>(p->norm_eps()), static_cast<double>(p->dt_min()),
                static_cast<double>(p->dt_max()), p->tied_head());
  if (const auto* p = m->params_as_RecurrentGemmaParams()) {
    std::string pattern;
    for (uint32_t i = 0; i < m->layers()->size(); ++i)
      pattern += m->layers()->Get(i)->kind() == fb::LayerKind::LocalAttentionBlock ? 'A' : 'R';
    std::printf("hyper         d_model=%u n_layer=%u vocab=%u lru_width=%u d_ffn=%u heads=%u kv_heads=%u head_dim=%u "
                "window=%u conv=%u rope_dims=%u rope_theta=%g eps=%g soft_cap=%g embed_scale=%g tied_head=%d\n"
                "layers        %s (R: recurrent RG-LRU block, A: local attention)\n",
                p->d_model(), p->n_layer(), p->vocab_size(), p->lru_width(), p->d_ffn(), p->n_heads(), p->n_kv_heads(),
                p->head_dim(), p->window(), p->conv_width(), p->rope_dims(), static_cast<double>(p->rope_theta()),
                static_cast<double>(p->norm_eps()), static_cast<double>(p->logits_soft_cap()),
                static_cast<double>(p->embed_scale()), p->tied_head(), pattern.c_str());
  }
  if (const auto* p = m->params_as_S4DParams())
    std::printf("hyper         d_model=%u n_layer=%u d_state=%u (%u complex modes per channel, discretized by zero-order "
                "hold) %s pool=%s eps=%g\n",
                p->d_model(), p->n_layer(), p->d_state(), p->d_state() / 2, p->prenorm() ? "prenorm" : "postnorm",
                p->pool() == fb::Pool::Mean ? "mean" : "none", static_cast<double>(p->norm_eps()));
  if (in.d_input) {
    const fb::Tensor* mean = nullptr;
    for (const fb::Tensor* t : *m->tensors())
      if (t->name()->str() == "input_mean") mean = t;
    std::printf("input         float[%u] per step (encoder)%s\n", in.d_input,
                mean ? ", standardized per channel first: (x - input_mean) / input_std" : "");
    std::printf("output        float[%u] per step (decoder)\n", in.d_output);
  } else {
    std::printf("input         token id in [0, %u)\noutput        logits [%u]\n", in.vocab_size, in.vocab_size);
  }
  std::printf("tokenizer     %s", in.tokenizer == TokenizerKind::kBytes   ? "bytes"
                                 : in.tokenizer == TokenizerKind::kWorld ? "world (RWKV vocabulary, longest match)"
                                 : in.tokenizer == TokenizerKind::kBpe   ? "bpe (byte-level BPE)"
                                 : in.tokenizer == TokenizerKind::kSentencePiece ? "sentencepiece"
                                                                         : "none");
  if (const fb::Tokenizer* tk = m->tokenizer()) {
    if (tk->source() && tk->source()->size()) std::printf(", from %s", tk->source()->c_str());
    if (tk->merges())
      std::printf(", %u merges, %u added tokens%s", tk->merges()->size(), tk->added_tokens() ? tk->added_tokens()->size() : 0,
                  tk->normalizer() == fb::TextNormalizer::Nfc ? ", NFC" : "");
    if (in.eos_id >= 0) std::printf(", end of text = %d", in.eos_id);
  }
  std::printf("\n");
  if (const auto* p = m->params_as_Rwkv7Params())
    std::printf("hyper         d_model=%u n_layer=%u vocab=%u heads=%u head_size=%u d_ffn=%u lora_ranks w/a/v/g=%u/%u/%u/%u"
                " eps=%g group_norm_eps=%g\n",
                p->d_model(), p->n_layer(), p->vocab_size(), p->n_heads(), p->head_size(), p->d_ffn(), p->rank_w(),
                p->rank_a(), p->rank_v(), p->rank_g(), static_cast<double>(p->norm_eps()),
                static_cast<double>(p->group_norm_eps()));
  uint64_t by_dtype[5] = {0}, n_params = 0;
  size_t n_tensors = 0;
  auto visit = [&](const fb::Tensor* t, const std::string& prefix, bool print) {
    uint64_t c = 1;
    for (uint64_t s : *t->shape()) c *= s;
    n_params += c;
    ++n_tensors;
    by_dtype[static_cast<int>(t->dtype()) % 5] += t->size();
    if (print) {
      std::string shape;
      for (uint64_t s : *t->shape()) shape += (shape.empty() ? "" : ", ") + std::to_string(s);
      const fb::Quant* q = t->quant();
      std::string quant;
      if (q && q->scheme() != fb::QuantScheme::None) {
        const fb::QuantScheme sc = q->scheme();
        const bool rows16 = sc == fb::QuantScheme::PerRowRows16 || sc == fb::QuantScheme::GroupedRows16;
        quant = (sc == fb::QuantScheme::PerRow || sc == fb::QuantScheme::PerRowRows16
                     ? std::string("scale per row")
                     : "scale per " + std::to_string(q->group_size())) +
                (rows16 ? ", 16-row interleaved" : ", row by row") + ", scales " + human_bytes(q->scales_size());
      }
      std::printf("  %-28s %-5s [%s] %s%s%s%s\n", (prefix + t->name()->str()).c_str(), fb::EnumNameDType(t->dtype()),
                  shape.c_str(), human_bytes(t->size()).c_str(), quant.empty() ? "" : " (", quant.c_str(),
                  quant.empty() ? "" : ")");
    }
  };
  const bool all = a.flag("--tensors");
  if (all) std::printf("tensors\n");
  for (const fb::Tensor* t : *m->tensors()) visit(t, "", all);
  for (uint32_t i = 0; i < m->layers()->size(); ++i)
    for (const fb::Tensor* t : *m->layers()->Get(i)->tensors()) visit(t, "layers." + std::to_string(i) + ".", all);
  std::printf("parameters    %.3f M in %zu tensors\n", n_params / 1e6, n_tensors);
  std::printf("weights       %s (", human_bytes(in.weight_bytes).c_str());
  bool first = true;
  for (int d = 0; d < 5; ++d)
    if (by_dtype[d]) {
      std::printf("%s%s %s", first ? "" : ", ", fb::EnumNameDType(static_cast<fb::DType>(d)), human_bytes(by_dtype[d]).c_str());
      first = false;
    }
  std::printf(")\nfile          %s\n", human_bytes(in.file_bytes).c_str());
  std::printf("state         %" PRIu64 " bytes per session (%s)\n", in.state_bytes, human_bytes(in.state_bytes).c_str());
  {  // one line per kind of state tensor ("layers.N.conv" -> conv), with the layers holding one
    struct Kind {
      std::string name, shape, dtype;
      uint64_t layers = 0, bytes = 0, rows = 0, row_bytes = 0;
      bool model = false;
    };
    std::vector<Kind> kinds;
    for (const fb::StateTensor* s : *m->state()->tensors()) {
      std::string name = s->name()->str();
      const size_t dot = name.rfind('.');
      if (s->layer() >= 0 && dot != std::string::npos) name = name.substr(dot + 1);
      auto it = std::find_if(kinds.begin(), kinds.end(), [&](const Kind& k) { return k.name == name; });
      if (it == kinds.end()) {
        Kind k;
        k.name = name;
        for (uint64_t v : *s->shape()) k.shape += (k.shape.empty() ? "" : ", ") + std::to_string(v);
        k.dtype = s->dtype() == fb::DType::F16 ? "f16" : s->dtype() == fb::DType::I64 ? "i64" : "f32";
        k.model = s->layer() < 0;
        if (s->shape()->size() == 2) k.rows = s->shape()->Get(0), k.row_bytes = s->size() / std::max<uint64_t>(1, k.rows);
        kinds.push_back(k);
        it = kinds.end() - 1;
      }
      it->layers += 1;
      it->bytes += s->size();
    }
    for (const Kind& k : kinds) {
      const bool ring = k.name == "k_ring" || k.name == "v_ring";
      const std::string where = k.model ? "once" : "x " + std::to_string(k.layers) + " layers";
      std::printf("  %-20s [%s] %s %s: %s\n", (k.name + (ring ? " (KV ring)" : "")).c_str(), k.shape.c_str(),
                  k.dtype.c_str(), where.c_str(), human_bytes(k.bytes).c_str());
      if (ring && k.rows)  // the same keys or values held for every token of a context, as a full cache would
        std::printf("  %-20s a full cache of every token would be %s at 8k tokens, %s at 32k\n", "",
                    human_bytes(k.bytes / k.rows * 8192).c_str(), human_bytes(k.bytes / k.rows * 32768).c_str());
    }
  }
  std::printf("arena         %zu bytes per session (state + scratch for prefill chunks of %u tokens)\n", arena,
              SessionOptions{}.prefill_chunk);
  std::printf("backend       %s\n", in.backend);
  std::printf("model memory  %zu bytes (weight views; weights are used in place)\n", model_mem);
  if (const fb::Provenance* p = m->provenance()) {
    // Provenance strings are optional in the schema: a damaged file may lack any of them.
    auto text = [](const flatbuffers::String* s, const char* none) { return s ? s->c_str() : none; };
    std::printf("provenance    %s, %s, options: %s\n", text(p->converter(), "?"), text(p->source_format(), "?"),
                text(p->options(), ""));
    if (p->source_dir()) std::printf("  source      %s\n", p->source_dir()->c_str());
    if (p->source_files())
      for (const fb::SourceFile* f : *p->source_files())
        std::printf("  %-28s %12" PRIu64 " B sha256 %s\n", text(f->name(), "?"), f->size(), text(f->sha256(), "?"));
  }
  if (a.flag("--verify")) {
    Error e;
    const double t0 = now_s();
    if (lm.model().verify_data(&e) != Status::kOk) return report(e, "verify");
    std::printf("verify        weight sha256 matches (%s in %.2f s)\n", human_bytes(in.weight_bytes).c_str(), now_s() - t0);
  }
  return 0;
}

// ---- shared: tokens ------------------------------------------------------------------------
// Comma-separated integers, each in [lo, hi]; false on a bad item (an empty string is an empty list).
bool parse_int_list(const std::string& s, long long lo, long long hi, std::vector<long long>* out) {
  for (const std::string& item : cli::split(s)) {
    long long v;
    if (!cli::parse_int(item, lo, hi, &v)) return false;
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

// Tokenizes with the model's tokenizer; false if it has none.
bool text_to_tokens(const Model& m, const std::string& text, std::vector<int32_t>* out) {
  size_t n = 0;
  Status st = tokenize(m, text.data(), text.size(), nullptr, 0, &n);
  if (st == Status::kUnsupported || st == Status::kBadState) return false;
  out->resize(n);
  return tokenize(m, text.data(), text.size(), out->data(), out->size(), &n) == Status::kOk;
}

// Streams generated bytes to stdout: a UTF-8 character split across tokens is printed once complete,
// and with a stop string, text that might be its beginning is held until it is known not to be.
class TextOut {
 public:
  explicit TextOut(std::string stop) : stop_(std::move(stop)) {}
  // Adds bytes; true once the stop string has appeared (the text before it is printed, not it).
  bool add(const char* p, size_t n) {
    held_.append(p, n);
    if (!stop_.empty()) {
      const size_t at = held_.find(stop_);
      if (at != std::string::npos) {
        emit(at);
        held_.clear();
        return true;
      }
    }
    size_t keep = incomplete_utf8_tail();
    if (!stop_.empty())  // the longest end of held_ that begins the stop string
      for (size_t k = std::min(stop_.size() - 1, held_.size()); k > keep; --k)
        if (held_.compare(held_.size() - k, k, stop_, 0, k) == 0) {
          keep = k;
          break;
        }
    emit(held_.size() - keep);
    return false;
  }
  void flush() { emit(held_.size()); }

 private:
  // Bytes at the end of held_ that start a UTF-8 character not yet complete (0 if none or invalid).
  size_t incomplete_utf8_tail() const {
    const size_t n = held_.size();
    for (size_t back = 1; back <= std::min<size_t>(3, n); ++back) {
      const auto c = static_cast<unsigned char>(held_[n - back]);
      if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
      const size_t need = c >= 0xF0 && c < 0xF8 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      return need > back ? back : 0;
    }
    return 0;
  }
  void emit(size_t n) {
    std::fwrite(held_.data(), 1, n, stdout);
    std::fflush(stdout);
    held_.erase(0, n);
  }
  std::string stop_, held_;
};

// ---- run -----------------------------------------------------------------------------------
int cmd_run(int argc, char** argv) {
  Args a{"run", "MODEL.rill [options]",
         "Stream text: feed the prompt, then sample tokens one at a time, printing each as it is made.\n"
         "A closing line on stderr gives prefill and decode speed.",
         "rill run demo.rill --prompt \"ROMEO:\" -n 300 --temp 0.8 --seed 1",
         {model_opt(),
          {"-p", "--prompt", "TEXT", "prompt text (needs a model with a tokenizer)", ""},
          {nullptr, "--tokens", "IDS", "prompt as comma-separated token ids instead of text", ""},
          backend_opt(), device_opt(),
          {"-n", "--n-predict", "N", "tokens to generate", "200"},
          {nullptr, "--temp", "T", "sampling temperature; 0 = greedy", "0.8", "RILL_TEMP"},
          {nullptr, "--top-k", "K", "keep the K most likely tokens; 0 = all", "40"},
          {nullptr, "--top-p", "P", "keep the smallest set with probability >= P; 1 = all", "0.95"},
          {nullptr, "--seed", "S", "random seed (default: from the clock)", ""},
          {nullptr, "--greedy", nullptr, "same as --temp 0", ""},
          {nullptr, "--stop", "TEXT", "stop when the output contains TEXT (not printed); the model's end-of-text"
                                     " token always stops", ""},
          threads_opt(),
          {"-q", "--quiet", nullptr, "no closing line", ""}}};
  if (int r = a.parse(argc, argv)) return r == 1 ? 0 : r;
  LoadedModel lm;
  if (int r = open_model(a, &lm, Takes::kTokens)) return r;
  const ModelInfo info = lm.model().info();
  long long n_predict;
  double temp, top_p;
  long long top_k, seed = static_cast<long long>(std::chrono::system_clock::now().time_since_epoch().count() & 0xFFFFFFFF);
  if (!cli::parse_int(a.get("--n-predict"), 0, 1ll << 40, &n_predict) || !cli::parse_float(a.get("--temp"), &temp) ||
      temp < 0 || !cli::parse_int(a.get("--top-k"), 0, 1 << 30, &top_k) || !cli::parse_float(a.get("--top-p"), &top_p) ||
      !(top_p > 0 && top_p <= 1) || (a.flag("--seed") && !cli::parse_int(a.get("--seed"), 0, INT64_MAX, &seed))) {
    std::fprintf(stderr, "rill run: bad numeric option (see rill run --help)\nexample: %s\n", a.example);
    return 2;
  }
  if (a.flag("--greedy")) temp = 0;
  const bool bytes_tok = info.tokenizer == TokenizerKind::kBytes;
  const bool has_tok = info.tokenizer != TokenizerKind::kNone;
  std::vector<int32_t> prompt;
  if (a.flag("--tokens")) {
    if (!parse_tokens(a.get("--tokens"), &prompt)) {
      std::fprintf(stderr, "rill run: --tokens wants comma-separated integers\n");
      return 2;
    }
  } else if (!a.get("--prompt").empty()) {
    if (!text_to_tokens(lm.model(), a.get("--prompt"), &prompt)) {
      std::fprintf(stderr, "rill run: this model has no tokenizer; give the prompt with --tokens IDS\n");
      return 2;
    }
  } else if (info.bos_id >= 0) {
    prompt.push_back(info.bos_id);
  } else {
    std::fprintf(stderr, "rill run: give a --prompt or --tokens\nexample: %s\n", a.example);
    return 2;
  }

  ThreadPool* pool = nullptr;
  if (!make_pool(a, &pool)) return 2;
  SessionOptions so;
  so.pool = pool;
  OwnedSession os;
  Error e;
  if (OwnedSession::create(lm.model(), so, &os, &e) != Status::kOk) return report(e, "session");
  std::vector<float> logits(info.vocab_size);
  std::vector<Sampler::Candidate> cand(Sampler::scratch_count(info.vocab_size));
  Sampler sampler;
  SamplerParams sp;
  sp.temperature = static_cast<float>(temp);
  sp.top_k = static_cast<int32_t>(top_k);
  sp.top_p = static_cast<float>(top_p);
  sp.seed = static_cast<uint64_t>(seed);
  if (sampler.init(sp, cand.data(), cand.size()) != Status::kOk) {
    std::fprintf(stderr, "rill run: bad sampling options\n");
    return 2;
  }
  std::signal(SIGINT, on_sigint);
  if (has_tok && !a.flag("--tokens")) std::fwrite(a.get("--prompt").data(), 1, a.get("--prompt").size(), stdout);
  std::fflush(stdout);
  const double t0 = now_s();
  Status s = os.session().prefill(prompt.data(), prompt.size(), logits.data(), logits.size());
  if (s != Status::kOk) {
    std::fprintf(stderr, "\nrill run: prompt rejected: %s\n", status_str(s));
    return 1;
  }
  const double t1 = now_s();
  long long produced = 0;
  // Byte models: only the 256 byte ids are text.
  const size_t n_valid = bytes_tok ? 256 : info.vocab_size;
  TextOut text_out(a.get("--stop"));
  for (; produced < n_predict && !g_interrupted; ++produced) {
    const int32_t tok = sampler.sample(logits.data(), logits.size(), n_valid);
    if (tok == info.eos_id && !bytes_tok) break;  // end of text: not printed
    char piece[4096];
    size_t n_piece = 0;
    if (has_tok && detokenize(lm.model(), tok, piece, sizeof piece, &n_piece) == Status::kOk) {
      if (text_out.add(piece, n_piece)) {
        ++produced;
        break;
      }
    } else {
      std::printf("%s%d", produced ? "," : "", tok);
      std::fflush(stdout);
    }
    if (produced + 1 < n_predict && (s = os.session().step(tok, logits.data(), logits.size())) != Status::kOk) {
      std::fprintf(stderr, "\nrill run: step failed: %s\n", status_str(s));
      return 1;
    }
  }
  text_out.flush();
  const double t2 = now_s();
  std::printf("\n");
  if (!a.flag("--quiet"))
    std::fprintf(stderr, "[prefill %zu tokens %.1f ms (%.0f tok/s) | decode %lld tokens %.1f ms, %.0f tok/s, %.3f ms/token"
                 " | arena %zu B, state %" PRIu64 " B]\n",
                 prompt.size(), (t1 - t0) * 1e3, prompt.size() / std::max(t1 - t0, 1e-9), produced, (t2 - t1) * 1e3,
                 produced / std::max(t2 - t1, 1e-9), (t2 - t1) * 1e3 / std::max<long long>(produced, 1), os.arena_bytes(),
                 info.state_bytes);
  ThreadPool::destroy(pool);
  return g_interrupted ? 130 : 0;
}

// ---- tokenize ------------------------------------------------------------------------------
// Escapes bytes for one line: printable ASCII as is, \n \r \t, other bytes as \xHH (a UTF-8 character
// is kept whole when complete).
std::string escape_piece(const std::string& p) {
  std::string out;
  for (size_t i = 0; i < p.size(); ++i) {
    const auto c = static_cast<unsigned char>(p[i]);
    char buf[8];
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == '\\') out += "\\\\";
    else if (c >= 0x20 && c < 0x7F) out += static_cast<char>(c);
    else {
      const size_t need = c >= 0xF0 && c < 0xF8 ? 4 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
      bool whole = need && i + need <= p.size();
      for (size_t k = 1; whole && k < need; ++k) whole = (static_cast<unsigned char>(p[i + k]) & 0xC0) == 0x80;
      if (whole) {
        out.append(p, i, need);
        i += need - 1;
      } else {
        std::snprintf(buf, sizeof buf, "\\x%02X", c);
        out += buf;
      }
    }
  }
  return out;
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

int cmd_tokenize(int argc, char** argv) {
  Args a{"tokenize", "(MODEL.rill | --tokenizer FILE) (--prompt TEXT | --text FILE | --decode IDS) [options]",
         "Text -> token ids with a model's embedded tokenizer, or with a tokenizer file (a Hugging Face\n"
         "tokenizer.json or an RWKV world vocabulary) before any model exists. Prints the ids comma-separated\n"
         "on one line; --pieces prints one token a line with its text; --decode turns ids back into text.",
         "rill tokenize --tokenizer tokenizer.json --prompt \"Hello world\"",
         {model_opt(), {nullptr, "--tokenizer", "FILE", "tokenizer.json or rwkv_vocab_*.txt instead of a model", ""},
          {"-p", "--prompt", "TEXT", "text to tokenize", ""},
          {nullptr, "--text", "FILE", "tokenize this file's bytes", ""},
          {nullptr, "--decode", "IDS", "comma-separated ids to turn back into text", ""},
          {nullptr, "--pieces", nullptr, "one token a line: id, then its text (escaped)", ""},
          {"-q", "--quiet", nullptr, "no count and speed line on stderr", ""}}};
  if (int r = a.parse(argc, argv)) return r == 1 ? 0 : r;
  const int inputs = (a.flag("--prompt") ? 1 : 0) + (a.flag("--text") ? 1 : 0) + (a.flag("--decode") ? 1 : 0);
  if (inputs != 1) {
    std::fprintf(stderr, "rill tokenize: give one of --prompt TEXT, --text FILE or --decode IDS\nexample: %s\n",
                 a.example);
    return 2;
  }
  // The tokenizer: a model's, or one file's read into a tokenizer-only buffer.
  LoadedModel lm;
  std::string buf;
  TokenizerView tv;
  if (a.flag("--tokenizer")) {
    if (!a.positional.empty() || a.flag("--model")) {
      std::fprintf(stderr, "rill tokenize: give a model or --tokenizer FILE, not both\n");
      return 2;
    }
    uint32_t vocab = 0;
    try {
      buf = convert::tokenizer_buffer(a.get("--tokenizer"), &vocab);
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "rill tokenize: %s\n", ex.what());
      return 1;
    }
    flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(buf.data()), buf.size());
    Error e;
    if (!fb::VerifyModelBuffer(v) ||
        bind_tokenizer(fb::GetModel(buf.data())->tokenizer(), vocab, &tv, &e) != Status::kOk) {
      std::fprintf(stderr, "rill tokenize: %s: %s\n", a.get("--tokenizer").c_str(), e.message);
      return 1;
    }
  } else {
    if (int r = open_model(a, &lm, Takes::kTokens)) return r;
    tv = lm.model().impl()->tok;
    if (tv.kind == TokenizerKind::kNone) {
      std::fprintf(stderr, "rill tokenize: this model has no tokenizer (convert it with --tokenizer FILE)\n");
      return 1;
    }
  }
  if (a.flag("--decode")) {
    std::vector<int32_t> ids;
    if (!parse_tokens(a.get("--decode"), &ids)) {
      std::fprintf(stderr, "rill tokenize: --decode wants comma-separated integers\n");
      return 2;
    }
    std::string out;
    for (int32_t id : ids) {
      char piece[8192];
      size_t n = 0;
      const Status st = detokenize_view(tv, id, piece, sizeof piece, &n);
      if (st != Status::kOk) {
        std::fprintf(stderr, "rill tokenize: token %d: %s (the vocabulary has %u ids)\n", id, status_str(st),
                     tv.vocab_size);
        return 1;
      }
      out.append(piece, n);
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    if (isatty(1)) std::printf("\n");
    return 0;
  }
  std::string text = a.get("--prompt");
  if (a.flag("--text") && !read_whole_file(a.get("--text"), &text)) {
    std::fprintf(stderr, "rill tokenize: cannot read %s\n", a.get("--text").c_str());
    return 1;
  }
  const double t0 = now_s();
  size_t n = 0;
  Status st = tokenize_view(tv, text.data(), text.size(), nullptr, 0, &n);
  std::vector<int32_t> ids(n);
  if (st == Status::kOk || (st == Status::kInvalidArgument && n > 0))
    st = tokenize_view(tv, text.data(), text.size(), ids.data(), ids.size(), &n);
  const double dt = now_s() - t0;
  if (st != Status::kOk) {
    const char* why = st == Status::kUnsupported ? "this build cannot tokenize with this kind of tokenizer"
                      : tv.kind == TokenizerKind::kBpe ? "the text is not valid UTF-8"
                      : tv.kind == TokenizerKind::kWorld ? "a byte of the text has no token"
                                                         : "cannot tokenize";
    std::fprintf(stderr, "rill tokenize: %s (%s)\n", why, status_str(st));
    return 1;
  }
  if (a.flag("--pieces")) {
    for (int32_t id : ids) {
      char piece[8192];
      size_t k = 0;
      (void)detokenize_view(tv, id, piece, sizeof piece, &k);
      std::printf("%d\t%s\n", id, escape_piece(std::string(piece, k)).c_str());
    }
  } else {
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? "," : "") + std::to_string(ids[i]);
    std::printf("%s\n", line.c_str());
  }
  if (!a.flag("--quiet"))
    std::fprintf(stderr, "[%zu bytes -> %zu tokens (%.2f bytes/token) in %.1f ms, %.1f MB/s]\n", text.size(), ids.size(),
                 ids.empty() ? 0.0 : static_cast<double>(text.size()) / ids.size(), dt * 1e3,
                 text.size() / std::max(dt, 1e-9) / 1e6);
  return 0;
}

// ---- logits --------------------------------------------------------------------------------
bool write_npy(const std::string& path, const std::vector<float>& v, size_t rows, size_t cols) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  char hdr[128];
  int n = std::snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }", rows, cols);
  std::string h(hdr, static_cast<size_t>(n));
  while ((10 + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  const uint16_t hl = static_cast<uint16_t>(h.size());
  const unsigned char magic[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  bool ok = std::fwrite(magic, 1, 8, f) == 8 && std::fwrite(&hl, 2, 1, f) == 1 &&
            std::fwrite(h.data(), 1, h.size(), f) == h.size() &&
            std::fwrite(v.data(), sizeof(float), v.size(), f) == v.size();
  ok = (std::fclose(f) == 0) && ok;
  return ok;
}

int cmd_logits(int argc, char** argv) {
  Args a{"logits", "MODEL.rill (--tokens IDS | --text TEXT) -o OUT.npy",
         "Step the model over the tokens and write every step's logits as float32 [T, vocab] .npy,\n"
         "for comparing a conversion with the source framework (numpy.load).",
         "rill logits demo.rill --tokens 72,101,108,108,111 -o logits.npy",
         {model_opt(),
          {nullptr, "--tokens", "IDS", "comma-separated token ids", ""},
          {nullptr, "--text", "TEXT", "text, tokenized with the model's tokenizer", ""},
          {"-o", "--output", "FILE", "output .npy file", ""}, backend_opt(), device_opt()}};
  if (int r = a.parse(argc, argv)) return r == 1 ? 0 : r;
  LoadedModel lm;
  if (int r = open_model(a, &lm, Takes::kTokens)) return r;
  const ModelInfo info = lm.model().info();
  std::vector<int32_t> toks;
  if (a.flag("--tokens")) {
    if (!parse_tokens(a.get("--tokens"), &toks)) {
      std::fprintf(stderr, "rill logits: --tokens wants comma-separated integers\n");
      return 2;
    }
  } else if (a.flag("--text") && text_to_tokens(lm.model(), a.get("--text"), &toks)) {
  } else {
    std::fprintf(stderr, "rill logits: give --tokens (or --text for a model with a tokenizer)\nexample: %s\n", a.example);
    return 2;
  }
  if (a.get("--output").empty()) {
    std::fprintf(stderr, "rill logits: -o OUT.npy is required\nexample: %s\n", a.example);
    return 2;
  }
  OwnedSession os;
  Error e;
  if (OwnedSession::create(lm.model(), SessionOptions{}, &os, &e) != Status::kOk) return report(e, "session");
  const size_t V = info.vocab_size;
  std::vector<float> all(toks.size() * V);
  for (size_t t = 0; t < toks.size(); ++t) {
    const Status s = os.session().step(toks[t], all.data() + t * V, V);
    if (s != Status::kOk) {
      std::fprintf(stderr, "rill logits: token %zu (id %d): %s (vocab is %zu)\n", t, toks[t], status_str(s), V);
      return 1;
    }
  }
  if (!write_npy(a.get("--output"), all, toks.size(), V)) {
    std::fprintf(stderr, "rill logits: cannot write %s\n", a.get("--output").c_str());
    return 1;
  }
  std::fprintf(stderr, "wrote %s: float32 [%zu, %zu]\n", a.get("--output").c_str(), toks.size(), V);
  return 0;
}

// ---- stream --------------------------------------------------------------------------------
// A float .npy (little-endian f4 or f8, C order, 1-D or 2-D) as f32 rows x cols; 1-D is [n, 1].
bool read_npy(const std::string& path, std::vector<float>* out, size_t* rows, size_t* cols, std::string* why) {
  std::string bytes;
  if (!read_whole_file(path, &bytes)) return *why = "cannot read the file", false;
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) return *why = "not a .npy file", false;
  // The header length: u16 after the version in format 1, u32 in formats 2 and 3 (little-endian).
  const unsigned major = static_cast<unsigned char>(bytes[6]);
  const size_t len_bytes = major == 1 ? 2 : (major == 2 || major == 3) ? 4 : 0;
  if (len_bytes == 0 || bytes.size() < 8 + len_bytes) return *why = "unknown .npy version", false;
  size_t hl = 0, at = 8 + len_bytes;
  for (size_t k = 0; k < len_bytes; ++k) hl |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + k])) << (8 * k);
  if (hl > bytes.size() - at) return *why = "truncated .npy header", false;
  const std::string h = bytes.substr(at, hl);
  at += hl;
  const bool f4 = h.find("'<f4'") != std::string::npos, f8 = h.find("'<f8'") != std::string::npos;
  if (!f4 && !f8) return *why = "dtype must be little-endian float32 or float64", false;
  if (h.find("'fortran_order': False") == std::string::npos) return *why = "must be C order (fortran_order False)", false;
  const size_t lp = h.find("'shape': ("), rp = lp == std::string::npos ? lp : h.find(')', lp);
  if (rp == std::string::npos) return *why = "no shape in the header", false;
  std::vector<long long> dims;
  for (const std::string& item : cli::split(h.substr(lp + 10, rp - lp - 10))) {
    long long v;
    if (item.empty()) continue;
    if (!cli::parse_int(item, 0, 1ll << 40, &v)) return *why = "bad shape", false;
    dims.push_back(v);
  }
  if (dims.empty() || dims.size() > 2) return *why = "must be 1-D or 2-D", false;
  *rows = static_cast<size_t>(dims[0]);
  *cols = dims.size() == 2 ? static_cast<size_t>(dims[1]) : 1;
  const size_t esz = f4 ? 4 : 8;
  if (*cols != 0 && *rows > (bytes.size() - at) / esz / *cols) return *why = "data shorter than its shape", false;
  const size_t n = *rows * *cols;
  if (bytes.size() - at != n * esz) return *why = "data longer than its shape", false;
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (f4) {
      std::memcpy(&(*out)[i], bytes.data() + at + 4 * i, 4);
    } else {
      double d;
      std::memcpy(&d, bytes.data() + at + 8 * i, 8);
      (*out)[i] = static_cast<float>(d);
    }
  }
  return true;
}

int cmd_stream(int argc, char** argv) {
  Args a{"stream", "MODEL.rill --inputs IN.npy -o OUT.npy [options]",
         "Step a vector model (a sensor model: float vectors in, float vectors out) over the rows of IN.npy,\n"
         "float32 or float64 [T, d_input], from an empty state, and write every step's output as float32\n"
         "[T, d_output] .npy: one row per step. The sensor counterpart of rill logits.",
         "rill stream pendulum.rill --inputs examples/sensor_demo/heldout_inputs.npy -o estimates.npy",
         {model_opt(),
          {"-i", "--inputs", "FILE", "input .npy, [T, d_input] (1-D when d_input is 1)", ""},
          {"-o", "--output", "FILE", "output .npy file", ""},
          {nullptr, "--chunk", "N", "steps per forward pass (prefill_vectors; 1 = step_vector each row)", "1"},
          backend_opt(), device_opt()}};
  if (int r = a.parse(argc, argv)) return r == 1 ? 0 : r;
  LoadedModel lm;
  if (int r = open_model(a, &lm, Takes::kVectors)) return r;
  const ModelInfo info = lm.model().info();
  long long chunk;
  if (a.get("--inputs").empty() || a.get("--output").empty() || !cli::parse_int(a.get("--chunk"), 1, 4096, &chunk)) {
    std::fprintf(stderr, "rill stream: --inputs IN.npy and -o OUT.npy are required (--chunk 1 to 4096)\nexample: %s\n",
                 a.example);
    return 2;
  }
  std::vector<float> in;
  size_t T = 0, cols = 0;
  std::string why;
  if (!read_npy(a.get("--inputs"), &in, &T, &cols, &why)) {
    std::fprintf(stderr, "rill stream: %s: %s\n", a.get("--inputs").c_str(), why.c_str());
    return 1;
  }
  if (cols != info.d_input) {
    std::fprintf(stderr, "rill stream: %s has %zu columns, the model takes %u per step\n", a.get("--inputs").c_str(), cols,
                 info.d_input);
    return 1;
  }
  SessionOptions so;
  so.prefill_chunk = static_cast<uint32_t>(chunk);
  OwnedSession os;
  Error e;
  if (OwnedSession::create(lm.model(), so, &os, &e) != Status::kOk) return report(e, "session");
  const size_t dout = info.d_output;
  std::vector<float> out(T * dout);
  std::vector<double> us;
  const double t0 = now_s();
  for (size_t t = 0; t < T; t += static_cast<size_t>(chunk)) {
    const size_t n = std::min(T - t, static_cast<size_t>(chunk));
    const double s0 = now_s();
    const Status s = os.session().prefill_vectors(in.data() + t * cols, n, n * cols, out.data() + t * dout, n * dout);
    us.push_back((now_s() - s0) * 1e6 / static_cast<double>(n));
    if (s != Status::kOk) {
      std::fprintf(stderr, "rill stream: row %zu%s: %s\n", t, n > 1 ? " (or a later row of its chunk)" : "",
                   status_str(s));
      return 1;
    }
  }
  const double secs = now_s() - t0;
  if (!write_npy(a.get("--output"), out, T, dout)) {
    std::fprintf(stderr, "rill stream: cannot write %s\n", a.get("--output").c_str());
    return 1;
  }
  std::sort(us.begin(), us.end());
  std::fprintf(stderr, "wrote %s: float32 [%zu, %zu]; %zu steps in %.3f s, %.2f us/step median\n",
               a.get("--output").c_str(), T, dout, T, secs, us.empty() ? 0.0 : us[us.size() / 2]);
  return 0;
}

// ---- eval ----------------------------------------------------------------------------------
int cmd_eval(int argc, char** argv) {
  Args a{"eval", "MODEL.rill --text FILE [options]",
         "Bits per byte and perplexity on a text file: the text is tokenized with the model's tokenizer and\n"
         "stepped from an empty state; bits per byte = sum of -log2 p(next token) / bytes of the predicted\n"
         "tokens; perplexity = 2^(sum of -log2 p / predicted tokens), per token of this model's tokenizer.",
         "rill eval demo.rill --text examples/demo_model/heldout.txt",
         {model_opt(), {nullptr, "--text", "FILE", "text file to score", ""},
          {nullptr, "--max-bytes", "N", "score at most N bytes; 0 = all", "0"},
          {nullptr, "--window", "N", "reset the state every N tokens (score independent windows); 0 = one stream", "0"},
          threads_opt(), backend_opt(), device_opt(),
          {"-q", "--quiet", nullptr, "no progress", ""}}};
  if (int r = a.parse(argc, argv)) return r == 1 ? 0 : r;
  LoadedModel lm;
  if (int r = open_model(a, &lm, Takes::kTokens)) return r;
  const ModelInfo info = lm.model().info();
  if (info.tokenizer == TokenizerKind::kNone) {
    std::fprintf(stderr, "rill eval: this model has no tokenizer; bits per byte needs one\n");
    return 1;
  }
  long long max_bytes, window;
  if (a.get("--text").empty() || !cli::parse_int(a.get("--max-bytes"), 0, 1ll << 50, &max_bytes) ||
      !cli::parse_int(a.get("--window"), 0, 1ll << 50, &window) || window == 1) {
    std::fprintf(stderr, "rill eval: need --text FILE\nexample: %s\n", a.example);
    return 2;
  }
  std::string text;
  if (!read_whole_file(a.get("--text"), &text)) {
    std::fprintf(stderr, "rill eval: cannot open %s\n", a.get("--text").c_str());
    return 1;
  }
  if (max_bytes > 0 && text.size() > static_cast<size_t>(max_bytes)) text.resize(static_cast<size_t>(max_bytes));
  std::vector<int32_t> toks;
  if (!text_to_tokens(lm.model(), text, &toks)) {
    std::fprintf(stderr, "rill eval: the text cannot be tokenized with this model's vocabulary\n");
    return 1;
  }
  if (toks.size() < 2) {
    std::fprintf(stderr, "rill eval: text needs at least 2 tokens\n");
    return 1;
  }
  ThreadPool* pool = nullptr;
  if (!make_pool(a, &pool)) return 2;
  SessionOptions so;
  so.pool = pool;
  OwnedSession os;
  Error e;
  if (OwnedSession::create(lm.model(), so, &os, &e) != Status::kOk) return report(e, "session");
  std::vector<float> logits(info.vocab_size);
  // Byte models: only the 256 byte ids are text; others: the whole vocabulary.
  const size_t n_valid = info.tokenizer == TokenizerKind::kBytes ? 256 : info.vocab_size;
  double bits = 0;
  size_t scored_bytes = 0, scored = 0;
  const double t0 = now_s();
  const bool tty = isatty(2) && !a.flag("--quiet");
  std::signal(SIGINT, on_sigint);
  for (size_t i = 0; i + 1 < toks.size() && !g_interrupted; ++i) {
    if (window > 0 && i % static_cast<size_t>(window) == 0) os.session().reset();
    (void)os.session().step(toks[i], logits.data(), logits.size());
    float mx = logits[0];
    for (size_t v = 1; v < n_valid; ++v) mx = std::max(mx, logits[v]);
    double z = 0;
    for (size_t v = 0; v < n_valid; ++v) z += std::exp(static_cast<double>(logits[v] - mx));
    bits += (std::log(z) + mx - logits[toks[i + 1]]) / std::log(2.0);
    char piece[4096];
    size_t len = 0;
    (void)detokenize(lm.model(), toks[i + 1], piece, sizeof piece, &len);
    scored_bytes += len;
    ++scored;
    if (tty && (i % 4096 == 0))
      std::fprintf(stderr, "\r  %zu/%zu tokens, %.4f bits/byte", i, toks.size() - 1,
                   bits / static_cast<double>(std::max<size_t>(scored_bytes, 1)));
  }
  if (tty) std::fprintf(stderr, "\r%-60s\r", "");
  const double dt = now_s() - t0;
  const char* tk_name = info.tokenizer == TokenizerKind::kBytes ? "bytes"
                        : info.tokenizer == TokenizerKind::kWorld ? "world"
                        : info.tokenizer == TokenizerKind::kSentencePiece ? "sentencepiece"
                                                                  : "bpe";
  std::printf("%.4f bits/byte, perplexity %.3f per %s token, over %zu bytes (%zu tokens) of %s",
              bits / static_cast<double>(std::max<size_t>(scored_bytes, 1)),
              std::exp2(bits / static_cast<double>(std::max<size_t>(scored, 1))), tk_name, scored_bytes, scored,
              a.get("--text").c_str());
  if (window > 0) std::printf(" in windows of %lld tokens", window);
  std::printf(" (%.0f tokens/s)\n", scored / dt);
  ThreadPool::destroy(pool);
  return g_interrupted ? 130 : 0;
}

// ---- bench ---------------------------------------------------------------------------------
// Sums [b, e) of 64-bit words; where the CPU has AVX2, with 256-bit loads from two halves of the range
// at once, prefetching 2 KiB ahead, as the product kernels read several rows with prefetch (one plain
// sequential stream read 30-40 % less than a decode step did on a Sapphire Rapids VM).
#if defined(__x86_64__)
__attribute__((target("avx2"))) uint64_t sum_words_avx2(const uint64_t* p, size_t b, size_t e) {
  const size_t half = (e - b) / 2 / 8 * 8;
  const uint64_t* q0 = p + b;
  const uint64_t* q1 = q0 + half;
  __m256i a0 = _mm256_setzero_si256(), a1 = a0;
  for (size_t i = 0; i < half; i += 8) {
    _mm_prefetch(reinterpret_cast<const char*>(q0 + i) + 2048, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(q1 + i) + 2048, _MM_HINT_T0);
    a0 = _mm256_add_epi64(a0, _mm256_add_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q0 + i)),
                                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q0 + i + 4))));
    a1 = _mm256_add_epi64(a1, _mm256_add_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q1 + i)),
                                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q1 + i + 4))));
  }
  alignas(32) uint64_t t[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t), _mm256_add_epi64(a0, a1));
  uint64_t s = t[0] + t[1] + t[2] + t[3];
  for (size_t i = b + 2 * half; i < e; ++i) s += p[i];
  return s;
}
#endif

uint64_t sum_words(const uint64_t* p, size_t b, size_t e) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) return sum_words_avx2(p, b, e);
#endif
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = b;
  for (; i + 4 <= e; i += 4) s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
  for (; i < e; ++i) s0 += p[i];
  return s0 + s1 + s2 + s3;
}

// Sequential-read bandwidth of this machine: the best of 5 passes summing `bytes` with `threads`.
double probe_read_gbs(size_t bytes, int threads) {
  const size_t n = bytes / sizeof(uint64_t);
  std::vector<uint64_t> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    std::vector<uint64_t> sums(threads, 0);
    const double t0 = now_s();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        const size_t b = n / threads * t, e = t + 1 == threads ? n : n / threads * (t + 1);
        sums[t] = sum_words(buf.data(), b, e);
      });
    for (auto& th : pool) th.join();
    const double dt = now_s() - t0;
    volatile uint64_t sink = 0;
    for (uint64_t v : sums) sink = sink + v;
    best = std::max(best, bytes / dt / 1e9);
  }
  return best;
}

// Weight bytes one decode step reads: every tensor, except an untied embedding (one row is gathered).
uint64_t bytes_per_token(const fb::Model* m) {
  bool has_head = false;
  for (const fb::Tensor* t : *m->tensors()) has_head |= t->name()->str() == "head";
  uint64_t total = 0;
  auto add = [&](const fb::Tensor* t) {
    const uint64_t b = t->size() + (t->quant() ? t->quant()->scales_size() : 0);
    if (t->name()->str() == "embedding" && has_head) total += b / t->shape()->Get(0);
    else total += b;
  };
  for (const fb::Tensor* t : *m->tensors()) add(t);
  for (const fb::Layer* l : *m->layers())
    for (const fb::Tensor* t : *l->tensors()) add(t);
  return total;
}

// Resident memory now (not the peak), from /proc/self/statm.
uint64_t rss_bytes() {
  unsigned long long pages_total = 0, pages_resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%llu %llu", &pages_total, &pages_resident) != 2) pages_resident = 0;
    std::fclose(f);
  }
  return pages_resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

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

// Long-run stability: n steps of one session on one thread, each timed; resident memory sampled ten
// times. Drift in the time per step or growth in memory over a million steps is what a control loop
// or a long-lived server would meet. Ctrl-C stops it early and reports the steps that ran (exit 130).
int soak(const Model& model, size_t n, bool json, const std::string& label) {
  const size_t every = std::max<size_t>(n / 10, 1);
  OwnedSession os;
  Error e;
  if (OwnedSession::create(model, SessionOptions{}, &os, &e) != Status::kOk) return report(e, "session");
  Feed feed(model.info());
  std::vector<float> ms(n);
  std::vector<uint64_t> rss;
  for (int i = 0; i < 100; ++i) (void)feed.run(os.session());  // warm up
  std::signal(SIGINT, on_sigint);
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

// Many streams of one model advanced together (Batch::step): aggregate steps/s and the time of one
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
        if (OwnedSession::create(model, SessionOptions{}, &os, &e) != Status::kOk) return report(e, "session");
        ptrs.push_back(&os.session());
      }
      BatchOptions bo;
      bo.pool = pool;
      bo.max_streams = static_cast<uint32_t>(n);
      size_t bytes = 0;
      AlignedBuffer arena;
      Batch batch;
      if (Batch::footprint(model, bo, &bytes) != Status::kOk || AlignedBuffer::allocate(bytes, &arena) != Status::kOk ||
          Batch::init(model, bo, arena.data(), arena.size(), &batch, &e) != Status::kOk)
        return report(e, "batch");
      std::vector<int32_t> toks(static_cast<size_t>(n));
      std::vector<float> logits(static_cast<size_t>(n) * info.vocab_size);
      auto next = [&](long long step) {
        for (size_t i = 0; i < toks.size(); ++i)
          toks[i] = static_cast<int32_t>((step * 7 + static_cast<long long>(i) * 13 + 3) % info.vocab_size);
      };
      for (int w = 0; w < 4; ++w) {
        next(w);
        (void)batch.step(ptrs.data(), toks.data(), toks.size(), logits.data(), logits.size());
      }
      std::vector<double> ms(static_cast<size_t>(n_steps));
      const double t0 = now_s();
      for (long long i = 0; i < n_steps; ++i) {
        next(i);
        const double s0 = now_s();
        (void)batch.step(ptrs.data(), toks.data(), toks.size(), logits.data(), logits.size());
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
    std::printf("(Batch::step: every stream advances one token per step, weights read once for all of them)\n");
  }
  return g_interrupted ? 130 : 0;
}

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
          backend_opt(), device_opt(),
          {"-n", "--tokens", "N", "decode steps timed", "128"},
          {nullptr, "--prefill", "N", "prompt length timed for prefill", "512"},
          {nullptr, "--context", "N", "tokens prefilled (untimed) before decode is timed: decode at that position\n"
           "                                 (for RecurrentGemma, a full attention window)", "0"},
          {nullptr, "--chunk", "LIST", "prefill chunk sizes (tokens per forward pass) to time, e.g. 8,16,32,64\n"
           "                                 (default: the session default)", ""},
          {nullptr, "--probe-mb", "MB", "size of the bandwidth probe buffer; auto: the bytes one decode step\n"
           "                                 moves (so the probe reads from the cache level or DRAM the model\n"
           "                                 itself reads from)", "auto"},
          {"-t", "--threads", "LIST", "thread counts to measure, e.g. 1,2", "1,2"},
          {nullptr, "--streams", "LIST", "then many streams in one pass (Batch::step), e.g. 1,4,16,64:\n"
           "                                 aggregate steps/s and per-stream latency (empty: off)", ""},
          {nullptr, "--soak", "N", "afterwards, step one session N times on one thread and compare the first\n"
           "                                 and last 10,000 steps' mean time and the resident memory (0: off)", "0"},
          {"-o", "--output", "FORMAT", "md | json", "md"}}};
  if (int r = a.parse(argc, argv)) return r == 1 ? 0 : r;
  long long n_tok, n_pre, probe_mb = 0, n_soak, n_ctx;
  if (!cli::parse_int(a.get("--tokens"), 1, 1 << 24, &n_tok) || !cli::parse_int(a.get("--prefill"), 0, 1 << 24, &n_pre) ||
      !cli::parse_int(a.get("--context"), 0, 1 << 24, &n_ctx) ||
      !cli::parse_int(a.get("--soak"), 0, 1ll << 32, &n_soak) ||
      (a.get("--probe-mb") != "auto" && !cli::parse_int(a.get("--probe-mb"), 16, 1 << 16, &probe_mb)) ||
      (a.get("--output") != "md" && a.get("--output") != "json")) {
    std::fprintf(stderr, "rill bench: bad option (see rill bench --help)\nexample: %s\n", a.example);
    return 2;
  }
  std::string path = a.get("--model");
  if (path.empty() && !a.positional.empty()) path = a.positional[0];
  std::string tmpdir, label = path;
  if (a.flag("--random")) {
    const std::string spec = a.get("--random");
    const size_t colon = spec.find(':');
    std::map<std::string, uint64_t> kv;
    for (const std::string& item : cli::split(colon == std::string::npos ? "" : spec.substr(colon + 1))) {
      const size_t eq = item.find('=');
      long long v;
      if (eq == std::string::npos || !cli::parse_int(item.substr(eq + 1), 0, 1ll << 40, &v)) {
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
    so.pool = pool;
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
    if (dev)
      std::printf("(device: %s per token = one CUDA graph launch of %zu ops (kernels and copies); device memory %s "
                  "= weights %s + session %s; threads do not apply)\n",
                  graph_ops ? "1 launch" : "eager launches", graph_ops,
                  human_bytes(info.weight_bytes + session_device_bytes).c_str(), human_bytes(info.weight_bytes).c_str(),
                  human_bytes(session_device_bytes).c_str());
  }
  if (!streams.empty() && info.d_input) {
    std::fprintf(stderr, "rill bench: --streams (Batch::step) takes token models only\n");
    return 2;
  }
  if (!streams.empty()) {
    std::signal(SIGINT, on_sigint);
    const int rc = bench_streams(lm.model(), thread_counts, streams, n_tok, a.get("--output") == "json", label);
    if (rc != 0) return rc;
  }
  if (n_soak > 0) return soak(lm.model(), static_cast<size_t>(n_soak), a.get("--output") == "json", label);
  return 0;
}

void usage(FILE* f) {
  std::fprintf(f,
               "rill %s: run recurrent sequence models (Mamba, Mamba-2, RWKV-7, S4D) with a fixed-size state\n\n"
               "usage: rill <command> [options]    (rill <command> --help for each)\n\n"
               "commands:\n"
               "  convert   Hugging Face checkpoint folder -> rill model file\n"
               "  inspect   show a model file: architecture, tensors, state and arena bytes, provenance\n"
               "  run       stream generated text from a prompt\n"
               "  logits    write per-step logits of a token sequence as .npy\n"
               "  stream    step a vector (sensor) model over the rows of a .npy, write its outputs as .npy\n"
               "  eval      bits per byte and perplexity on a text file\n"
               "  tokenize  text -> token ids (and back) with a model's or a file's tokenizer\n"
               "  bench     decode/prefill speed, bytes per token, share of memory bandwidth\n\n"
               "exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted\n"
               "example:\n  rill convert examples/demo_model/checkpoint -o demo.rill && rill run demo.rill -p \"ROMEO:\"\n",
               version_string());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const std::string c = argv[1];
  if (c == "-h" || c == "--help" || c == "help") {
    usage(stdout);
    return 0;
  }
  if (c == "--version" || c == "version") {
    std::printf("rill %s (backends: %s)\n", version_string(), compiled_backends());
    if (const BackendImpl* cuda = find_backend(Backend::kCuda)) {  // compiled in: is a device there?
      Error e;
      if (cuda->device && cuda->device->probe(0, &e) != Status::kOk) std::printf("cuda: %s\n", e.message);
      else std::printf("cuda: device 0 ready\n");
    }
    return 0;
  }
  if (c == "convert") return cmd_convert(argc - 2, argv + 2);
  if (c == "inspect") return cmd_inspect(argc - 2, argv + 2);
  if (c == "run") return cmd_run(argc - 2, argv + 2);
  if (c == "logits") return cmd_logits(argc - 2, argv + 2);
  if (c == "stream") return cmd_stream(argc - 2, argv + 2);
  if (c == "eval") return cmd_eval(argc - 2, argv + 2);
  if (c == "tokenize") return cmd_tokenize(argc - 2, argv + 2);
  if (c == "bench") return cmd_bench(argc - 2, argv + 2);
  std::fprintf(stderr, "rill: unknown command '%s'\n\n", c.c_str());
  usage(stderr);
  return 2;
}
