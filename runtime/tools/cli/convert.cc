// rill convert and rill inspect: checkpoint folder -> model file, and what a model file holds.
#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "common.h"
#include "core/model_impl.h"
#include "rill/convert.hpp"
#include "rill_generated.h"

namespace rill {
namespace cli {

int cmd_convert(int argc, char** argv) {
  Args a{"convert", "CHECKPOINT_DIR -o MODEL.rill [options]",
         "Convert a Hugging Face checkpoint folder (config.json + model.safetensors, or sharded\n"
         "model-*.safetensors with model.safetensors.index.json; f32/f16/bf16) into a rill model file.\n"
         "Every tensor name and shape is checked against config.json before anything is written; the\n"
         "output appears only when complete. Supported: Mamba-1 (HF MambaForCausalLM and mamba_ssm naming),\n"
         "Mamba-2 (HF Mamba2ForCausalLM and mamba_ssm naming), RWKV-7 (fla rwkv7-*-world layout, or BlinkDL\n"
         "naming as safetensors), RWKV-6 (HF Rwkv6ForCausalLM, or BlinkDL naming as safetensors), Gated DeltaNet, GLA and RetNet\n"
         "(fla GatedDeltaNetForCausalLM, GLAForCausalLM, RetNetForCausalLM), S4D (state-spaces/s4 S4Model with a config.json), RecurrentGemma (HF\n"
         "RecurrentGemmaForCausalLM), Mamba-2 hybrids (HF GraniteMoeHybridForCausalLM, dense: Granite 4.0-H;\n"
         "NemotronHForCausalLM). The tokenizer beside the checkpoint is embedded: rwkv_vocab_v20230424.txt\n"
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
          {nullptr, "--kv-dtype", "TYPE", "key/value rings in the state (RecurrentGemma, Mamba-2 hybrids): auto (f32 in\n"
           "                                 f32 models, else f16) | f32 | f16", "auto"},
          {nullptr, "--max-context", "N", "Mamba-2 hybrids: tokens a stream's attention holds by default, which sizes the\n"
           "                                 state (a loader may choose another); 0: max_position_embeddings, at most 4096", "0"},
          {nullptr, "--keep-float", "PATTERNS", "comma-separated globs of tensors kept in f16, e.g. 'head,layers.0.*'", ""},
          {nullptr, "--quantize", "PATTERNS", "comma-separated globs quantized even if sensitive by default", ""},
          {nullptr, "--report", "FILE", "write per-tensor dtype, bytes and relative RMS error as CSV, and a bar chart\n"
           "                                 of the error per layer beside it (FILE with .svg)", ""},
          {nullptr, "--tokenizer", "FILE", "auto (what the folder holds) | none | bytes | a tokenizer.json,\n"
                                              "                                 tokenizer.model or rwkv_vocab_*.txt file", "auto"},
          {"-f", "--force", nullptr, "overwrite an existing output file", ""},
          {nullptr, "--allow-unknown-config", nullptr, "convert even if config.json has fields rill does not know", ""},
          {nullptr, "--allow-non-finite", nullptr,
           "keep NaN or infinite weights as they are (refused by default): a model that fails on\n"
           "                                 purpose, to test what runs it (examples/control_loop's failsafe test)", ""},
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
  o.allow_non_finite = a.flag("--allow-non-finite");
  o.quiet = a.flag("--quiet");
  long long group;
  if (!parse_int(a.get("--group"), 1, 1 << 20, &group)) {
    std::fprintf(stderr, "rill convert: --group wants 32, 64 or 128\n");
    return 2;
  }
  o.group = static_cast<uint32_t>(group);
  o.quant_layout = a.get("--quant-layout");
  o.kv_dtype = a.get("--kv-dtype");
  long long max_context;
  if (!parse_int(a.get("--max-context"), 0, 1 << 20, &max_context)) {
    std::fprintf(stderr, "rill convert: --max-context wants 0 (from the config) to 1048576 tokens\n");
    return 2;
  }
  o.max_context = static_cast<uint32_t>(max_context);
  o.keep_float = split(a.get("--keep-float"));
  o.quantize = split(a.get("--quantize"));
  o.report = a.get("--report");
  o.command_line = "--dtype " + o.dtype +
                   (o.dtype == "q4" ? " --group " + std::to_string(o.group) : "") +
                   (o.dtype == "q8" || o.dtype == "q4" ? " --quant-layout " + o.quant_layout : "") +
                   (o.kv_dtype != "auto" ? " --kv-dtype " + o.kv_dtype : "") +
                   (o.max_context ? " --max-context " + std::to_string(o.max_context) : "") +
                   " --tokenizer " + o.tokenizer + (o.keep_float.empty() ? "" : " --keep-float " + a.get("--keep-float")) +
                   (o.quantize.empty() ? "" : " --quantize " + a.get("--quantize")) +
                   (o.allow_non_finite ? " --allow-non-finite" : "");
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

int cmd_inspect(int argc, char** argv) {
  Args a{"inspect", "MODEL.rill [options]",
         "Show a model file: architecture, hyper-parameters, tensors (dtype, shape, bytes), weight bytes,\n"
         "state bytes per session, session arena bytes and provenance. The file is fully verified first.",
         "rill inspect demo.rill --verify",
         {model_opt(), context_opt(), {nullptr, "--tensors", nullptr, "list every tensor", ""},
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
                                 : in.tokenizer == TokenizerKind::kBpeByteFallback ? "bpe (characters, byte fallback)"
                                                                         : "none");
  if (const fb::Tokenizer* tk = m->tokenizer()) {
    if (tk->source() && tk->source()->size()) std::printf(", from %s", tk->source()->c_str());
    if (tk->merges())
      std::printf(", %u merges, %u added tokens%s", tk->merges()->size(), tk->added_tokens() ? tk->added_tokens()->size() : 0,
                  tk->normalizer() == fb::TextNormalizer::Nfc ? ", NFC" : "");
    if (tk->kind() == fb::TokenizerKind::BpeByteFallback) {
      const char* prefix[] = {"no space prefix", "a space before each stretch", "a space before each piece",
                              "a space before the text"};
      std::printf(", %s%s", tk->space_prefix() <= fb::SpacePrefix::MAX ? prefix[static_cast<int>(tk->space_prefix())] : "?",
                  tk->split_before_space() ? ", words cut before spaces" : "");
    }
    if (in.eos_id >= 0) std::printf(", end of text = %d", in.eos_id);
  }
  std::printf("\n");
  if (const auto* p = m->params_as_Rwkv7Params())
    std::printf("hyper         d_model=%u n_layer=%u vocab=%u heads=%u head_size=%u d_ffn=%u lora_ranks w/a/v/g=%u/%u/%u/%u"
                " eps=%g group_norm_eps=%g\n",
                p->d_model(), p->n_layer(), p->vocab_size(), p->n_heads(), p->head_size(), p->d_ffn(), p->rank_w(),
                p->rank_a(), p->rank_v(), p->rank_g(), static_cast<double>(p->norm_eps()),
                static_cast<double>(p->group_norm_eps()));
  if (const auto* p = m->params_as_Rwkv6Params())
    std::printf("hyper         d_model=%u n_layer=%u vocab=%u heads=%u head_size=%u d_ffn=%u lora_ranks mix/decay=%u/%u"
                " eps=%g group_norm_eps=%g\n",
                p->d_model(), p->n_layer(), p->vocab_size(), p->n_heads(), p->head_size(), p->d_ffn(), p->rank_mix(),
                p->rank_decay(), static_cast<double>(p->norm_eps()), static_cast<double>(p->group_norm_eps()));
  uint64_t by_dtype[5] = {0}, n_params = 0;
  size_t n_tensors = 0;
  auto visit = [&](const fb::Tensor* t, const std::string& prefix, bool print) {
    uint64_t c = 1;
    for (uint64_t s : *t->shape()) c *= s;
    n_params += c;
    ++n_tensors;
    by_dtype[static_cast<int>(t->dtype()) % 5] += t->size();
    if (print) {
      const std::string shape = join(*t->shape(), ", ");
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
        k.shape = join(*s->shape(), ", ");
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
      if (ring && k.rows && !in.max_context)  // the same keys or values for every token, as a full cache would
        std::printf("  %-20s a full cache of every token would be %s at 8k tokens, %s at 32k\n", "",
                    human_bytes(k.bytes / k.rows * 8192).c_str(), human_bytes(k.bytes / k.rows * 32768).c_str());
    }
  }
  if (const fb::Mamba2HybridParams* hp = m->params_as_Mamba2HybridParams(); hp && hp->max_context() != in.max_context)
    std::printf("  (the file's layout, for its max_context %u; loaded with %u, the state above)\n", hp->max_context(),
                in.max_context);
  if (const std::string note = context_note(lm); !note.empty()) std::printf("max context   %s\n", note.c_str());
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

}  // namespace cli
}  // namespace rill
