// Mamba-2 / attention hybrids in their Hugging Face layouts (docs/architectures.md, Mamba-2 hybrids):
//   Granite 4.0-H   transformers GraniteMoeHybridForCausalLM (model_type "granitemoehybrid"), dense
//                   only (num_local_experts 0). A layer is (Mamba-2 mixer | attention) + the shared
//                   SwiGLU MLP, each sub-layer pre-norm with residual_multiplier: two rill blocks. The
//                   MLP's input_linear [2F, d] is split into gate (rows 0..F) and up (rows F..2F).
//   Nemotron-H      transformers NemotronHForCausalLM (model_type "nemotron_h"): one block per character
//                   of hybrid_override_pattern (M mixer, * attention, - squared-ReLU MLP); tensors under
//                   backbone. (the released checkpoints) or model. (transformers' own saves).
// Every config field that changes the math is read; training-only fields are known by name; anything
// else is refused by name.
#include <algorithm>
#include <cmath>
#include <limits>

#include "arch/mamba2_hybrid.h"
#include "arch_common.h"

namespace rill {
namespace convert {

namespace {

using Spec = spec::Mamba2Hybrid;
constexpr uint64_t kDefaultContextCap = 4096;

// [rows0, rows0 + rows) of a [R, cols] checkpoint matrix.
std::function<std::vector<float>()> row_slice(const Checkpoint& ck, const SrcTensor* src, uint64_t rows0,
                                              uint64_t rows, uint64_t cols) {
  return [&ck, src, rows0, rows, cols] {
    std::vector<float> w = ck.read_f32(*src);
    std::vector<float> o(w.begin() + static_cast<ptrdiff_t>(rows0 * cols),
                         w.begin() + static_cast<ptrdiff_t>((rows0 + rows) * cols));
    ck.recycle(std::move(w));
    return o;
  };
}

// The default context: --max-context, else max_position_embeddings capped at 4096.
uint32_t context_of(const ArchInput& in, const json& cfg) {
  if (in.max_context) return in.max_context;
  const uint64_t mpe = cfg_uint(cfg, {"max_position_embeddings"}, kDefaultContextCap, false);
  return size32(std::max<uint64_t>(1, std::min(mpe, kDefaultContextCap)), "max_position_embeddings");
}

double number_or(const json& cfg, const char* key, double def) {
  return cfg.contains(key) && !cfg[key].is_null() ? cfg_number(cfg[key], key) : def;
}

// A family's names: the embedding, the final norm, and the prefix of every layer's tensors.
struct Names {
  std::string emb, norm_f;
  std::string layer;  // prefix of block i's tensors: layer + i + "."
};

const std::set<std::string> kGraniteUsed = {
    "model_type", "architectures", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings", "rms_norm_eps",
    "tie_word_embeddings", "rope_theta", "rope_scaling", "rope_parameters", "attention_bias", "embedding_multiplier",
    "logits_scaling", "residual_multiplier", "attention_multiplier", "num_local_experts", "num_experts_per_tok",
    "shared_intermediate_size", "position_embedding_type", "layer_types", "layers_block_type", "mamba_n_heads",
    "mamba_n_groups", "mamba_d_state", "mamba_d_head", "mamba_d_conv", "mamba_expand", "mamba_conv_bias",
    "mamba_proj_bias", "time_step_limit", "bos_token_id", "eos_token_id", "pad_token_id"};
// Training-time settings, cache hints and fields with no effect on a dense model's forward pass.
const std::set<std::string> kGraniteIgnored = {
    "_name_or_path", "torch_dtype", "dtype", "transformers_version", "use_cache", "initializer_range",
    "attention_dropout", "output_router_logits", "router_aux_loss_coef", "mamba_chunk_size", "time_step_min",
    "time_step_max", "time_step_floor", "init_method", "normalization_function"};

const std::set<std::string> kNemotronUsed = {
    "model_type", "architectures", "vocab_size", "hidden_size", "num_hidden_layers", "hybrid_override_pattern",
    "layers_block_type", "layer_types", "num_attention_heads", "num_key_value_heads", "head_dim",
    "attention_head_dim", "max_position_embeddings", "attention_bias", "sliding_window", "intermediate_size",
    "mlp_hidden_act", "mlp_bias", "ssm_state_size", "mamba_num_heads", "mamba_head_dim", "mamba_hidden_act",
    "n_groups", "conv_kernel", "expand", "time_step_limit", "use_conv_bias", "use_bias", "mamba_proj_bias",
    "layer_norm_epsilon", "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id", "n_routed_experts",
    "num_nextn_predict_layers"};
const std::set<std::string> kNemotronIgnored = {
    "_name_or_path", "torch_dtype", "dtype", "transformers_version", "use_cache", "initializer_range",
    "attention_dropout", "hidden_dropout", "auto_map", "chunk_size", "time_step_min", "time_step_max",
    "time_step_floor", "use_mamba_kernels", "num_logits_to_keep", "rescale_prenorm_residual", "residual_in_fp32",
    "mamba_ssm_cache_dtype", "n_shared_experts", "moe_intermediate_size", "moe_shared_expert_intermediate_size",
    "moe_latent_size", "moe_shared_expert_overlap", "num_experts_per_tok", "routed_scaling_factor", "n_group",
    "topk_group", "norm_topk_prob", "mtp_layers_block_type", "mtp_hybrid_override_pattern"};

// A config field that is a list of strings.
std::vector<std::string> str_list(const json& v, const char* what) {
  if (!v.is_array()) throw ConvertError(std::string("config.json: ") + what + " must be a list of strings");
  std::vector<std::string> out;
  for (const json& e : v) {
    if (!e.is_string()) throw ConvertError(std::string("config.json: ") + what + " must be a list of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

// The mixer's part of the hyper-parameters, after the caller filled d, E = H * P and the others.
void check_mixer(const Spec::Hyper& h, uint64_t expand) {
  if (uint64_t{h.n_heads} * h.head_dim != h.d_inner || (expand && expand * h.d_model != h.d_inner))
    throw ConvertError("config.json: the Mamba-2 heads * head dim (" + std::to_string(h.d_inner) +
                       ") differs from expand * hidden_size (" + std::to_string(expand * h.d_model) + ")");
  if (h.n_groups == 0 || h.n_heads % h.n_groups != 0)
    throw ConvertError("config.json: Mamba-2 heads " + std::to_string(h.n_heads) + " are not a multiple of groups " +
                       std::to_string(h.n_groups));
}

// The embedding (its rows are the vocabulary) and whether the head is tied.
uint32_t vocab_rows(const Checkpoint& ck, const std::string& emb, uint64_t d, uint64_t vocab) {
  const SrcTensor* e = ck.find(emb);
  if (!e || e->shape.size() != 2 || e->shape[1] != d)
    throw ConvertError("checkpoint: " + emb + " missing or not [vocab, " + std::to_string(d) + "]");
  if (e->shape[0] < vocab)
    throw ConvertError("tensor " + emb + " has " + std::to_string(e->shape[0]) + " rows, vocab_size is " +
                       std::to_string(vocab));
  return size32(e->shape[0], "vocab_size");
}
bool head_tied(const Checkpoint& ck, const json& cfg, const std::string& emb, bool tie_default) {
  const bool tie = cfg_bool(cfg, {"tie_word_embeddings"}, tie_default);
  if (!ck.find("lm_head.weight")) {
    if (!tie) throw ConvertError("checkpoint: tie_word_embeddings is false but lm_head.weight is missing");
    return true;
  }
  return tie && head_is_embedding(ck, emb);
}

// The tensors of every block and the ends. kinds[i] is block i's kind; src(i) its checkpoint prefix and
// mlp_split(i) whether its MLP is one [2F, d] input_linear to split (Granite).
void plan(const ArchInput& in, FileContent* content, const Spec::Hyper& h, const std::vector<fb::LayerKind>& kinds,
          const Names& nm, const std::vector<std::string>& prefix, const std::vector<std::string>& norm_of,
          bool granite) {
  const Checkpoint& ck = in.ck;
  TensorSet ts = TensorSet::of<Spec>(ck, content, h, make_ends(Spec::kEnds, h.d_model, h.vocab, h.tied_head, {}),
                                     in.matrix_dtype);
  ts.lm_tensors(nm.emb, nm.norm_f);
  const uint64_t d = h.d_model, F = h.d_ffn;
  for (size_t i = 0; i < kinds.size(); ++i) {
    const int li = static_cast<int>(i);
    const std::string& p = prefix[i];
    ts.copy(norm_of[i], "norm", li);
    if (kinds[i] == fb::LayerKind::Mamba2Mixer) {
      mamba2_mixer_tensors(ts, p, li, h.n_heads, h.head_dim, h.conv_bias, false);
    } else if (kinds[i] == fb::LayerKind::AttentionBlock) {
      for (const char* w : {"q", "k", "v", "o"}) {
        ts.copy(p + w + "_proj.weight", w, li);
        if (h.attention_bias) ts.copy(p + w + "_proj.bias", std::string(w) + "_b", li);
      }
    } else if (granite) {  // input_linear [2F, d]: gate rows, then up rows
      const SrcTensor* il = ts.expect(p + "input_linear.weight", {2 * F, d});
      if (il) {
        ts.add("gate", li, il, row_slice(ck, il, 0, F, d));
        ts.add("up", li, il, row_slice(ck, il, F, F, d));
      }
      ts.copy(p + "output_linear.weight", "down", li);
    } else {
      ts.copy(p + "up_proj.weight", "up", li);
      ts.copy(p + "down_proj.weight", "down", li);
    }
  }
  ts.finish("d_model=" + std::to_string(d) + " blocks=" + std::to_string(kinds.size()) +
            " mamba heads=" + std::to_string(h.n_heads) + "x" + std::to_string(h.head_dim) +
            " groups=" + std::to_string(h.n_groups) + " state=" + std::to_string(h.d_state) +
            " attention heads=" + std::to_string(h.attn_heads) + "/" + std::to_string(h.kv_heads) + "x" +
            std::to_string(h.attn_head_dim) + " ffn=" + std::to_string(F));
}

}  // namespace

bool granite_hybrid_matches(const ArchInput& in) { return model_type_is(in, "granitemoehybrid"); }
bool nemotron_h_matches(const ArchInput& in) { return model_type_is(in, "nemotron_h"); }

FileContent granite_hybrid_content(const ArchInput& in) {
  const json cfg = parse_config(in.config_text);
  std::vector<std::string> unknown;
  check_keys(cfg, kGraniteUsed, kGraniteIgnored, "", &unknown);
  fail_unknown(unknown, in.allow_unknown_config);
  // GraniteMoeHybridConfig's defaults where a field is absent.
  if (cfg_uint(cfg, {"num_local_experts"}, 8, false) != 0)
    throw ConvertError("config.json: num_local_experts > 0 is a mixture-of-experts Granite 4.0-H model; rill runs "
                       "the dense ones (num_local_experts 0) only");
  if (cfg.contains("hidden_act") && cfg["hidden_act"] != "silu")
    throw ConvertError("config.json: hidden_act " + cfg["hidden_act"].dump() + " is not supported (silu is)");
  if (cfg_bool(cfg, {"mamba_proj_bias"}, false))
    throw ConvertError("config.json: mamba_proj_bias=true (in/out projection biases) is not supported");
  for (const char* k : {"rope_scaling"})
    if (cfg.contains(k) && !cfg[k].is_null()) throw ConvertError(std::string("config.json: ") + k + " is not supported");
  const json pe = cfg.contains("position_embedding_type") ? cfg["position_embedding_type"] : json();
  if (!pe.is_null() && pe != "nope" && pe != "rope")
    throw ConvertError("config.json: position_embedding_type " + pe.dump() + " is not supported (nope, rope)");
  const bool rope = pe == "rope";
  if (rope && cfg.contains("rope_parameters") && cfg["rope_parameters"].is_object() &&
      cfg["rope_parameters"].value("rope_type", "default") != "default")
    throw ConvertError("config.json: rope_parameters.rope_type other than default is not supported");

  const uint64_t d = cfg_uint(cfg, {"hidden_size"}, 4096, false);
  const uint64_t L = cfg_uint(cfg, {"num_hidden_layers"}, 32, false);
  const uint64_t QH = cfg_uint(cfg, {"num_attention_heads"}, 32, false);
  const uint64_t KV = cfg_uint(cfg, {"num_key_value_heads"}, QH, false);
  if (d == 0 || L == 0 || QH == 0 || KV == 0) throw ConvertError("config.json: sizes must be positive");
  const uint64_t D = cfg_uint(cfg, {"head_dim"}, d / QH, false);
  const uint64_t expand = cfg_uint(cfg, {"mamba_expand"}, 2, false);
  const uint64_t MH = cfg_uint(cfg, {"mamba_n_heads"}, 128, false);
  if (MH == 0 || (expand * d) % MH != 0) throw ConvertError("config.json: mamba_n_heads must divide mamba_expand * hidden_size");
  uint64_t MP = expand * d / MH;
  if (cfg.contains("mamba_d_head") && cfg["mamba_d_head"] != "auto") MP = cfg_uint(cfg, {"mamba_d_head"}, MP, false);
  std::vector<std::string> types(L, "mamba");
  const char* types_key = cfg.contains("layer_types") ? "layer_types" : "layers_block_type";
  if (cfg.contains(types_key) && !cfg[types_key].is_null()) types = str_list(cfg[types_key], types_key);
  if (types.size() != L)
    throw ConvertError(std::string("config.json: ") + types_key + " has " + std::to_string(types.size()) +
                       " entries, num_hidden_layers is " + std::to_string(L));
  const double rope_theta = cfg.contains("rope_parameters") && cfg["rope_parameters"].is_object() &&
                                    cfg["rope_parameters"].contains("rope_theta")
                                ? cfg_number(cfg["rope_parameters"]["rope_theta"], "rope_parameters.rope_theta")
                                : number_or(cfg, "rope_theta", 10000.0);

  Spec::Hyper h{};
  h.d_model = size32(d, "hidden_size");
  h.n_layer = size32(2 * L, "2 * num_hidden_layers");
  h.d_inner = size32(expand * d, "mamba_expand * hidden_size");
  h.d_state = size32(cfg_uint(cfg, {"mamba_d_state"}, 256, false), "mamba_d_state");
  h.d_conv = size32(cfg_uint(cfg, {"mamba_d_conv"}, 4, false), "mamba_d_conv");
  h.n_heads = size32(MH, "mamba_n_heads");
  h.head_dim = size32(MP, "mamba_d_head");
  h.n_groups = size32(cfg_uint(cfg, {"mamba_n_groups"}, 1, false), "mamba_n_groups");
  h.norm_groups = 1;  // Granite's gated RMSNorm normalises the whole inner width
  h.attn_heads = size32(QH, "num_attention_heads");
  h.kv_heads = size32(KV, "num_key_value_heads");
  h.attn_head_dim = size32(D, "head_dim");
  h.max_context = context_of(in, cfg);
  h.rope_dims = rope ? h.attn_head_dim : 0;
  h.d_ffn = size32(cfg_uint(cfg, {"shared_intermediate_size"}, 1024, false), "shared_intermediate_size");
  h.mlp_act = 0;  // SiLU
  dt_limits(cfg, &h.dt_min, &h.dt_max);
  h.rope_theta = static_cast<float>(rope_theta);
  h.attn_scale = static_cast<float>(number_or(cfg, "attention_multiplier", 1.0));
  h.norm_eps = static_cast<float>(number_or(cfg, "rms_norm_eps", 1e-6));
  h.embed_scale = static_cast<float>(number_or(cfg, "embedding_multiplier", 1.0));
  h.residual_scale = static_cast<float>(number_or(cfg, "residual_multiplier", 1.0));
  const double logits_scaling = number_or(cfg, "logits_scaling", 1.0);
  if (!(logits_scaling > 0)) throw ConvertError("config.json: logits_scaling must be positive");
  h.logits_scale = static_cast<float>(1.0 / logits_scaling);
  h.conv_bias = cfg_bool(cfg, {"mamba_conv_bias"}, true);
  h.attention_bias = cfg_bool(cfg, {"attention_bias"}, false);
  h.kv_f16 = in.kv_dtype == fb::DType::F16;
  h.mlp_gated = true;
  check_mixer(h, expand);

  const Names nm{"model.embed_tokens.weight", "model.norm.weight", "model.layers."};
  h.vocab = vocab_rows(in.ck, nm.emb, d, cfg_uint(cfg, {"vocab_size"}, 32000, false));
  h.tied_head = head_tied(in.ck, cfg, nm.emb, false);
  std::vector<fb::LayerKind> kinds;
  std::vector<std::string> prefix, norm_of;
  for (uint64_t i = 0; i < L; ++i) {
    const std::string p = nm.layer + std::to_string(i) + ".";
    if (types[i] == "mamba") {
      kinds.push_back(fb::LayerKind::Mamba2Mixer), prefix.push_back(p + "mamba.");
    } else if (types[i] == "attention") {
      kinds.push_back(fb::LayerKind::AttentionBlock), prefix.push_back(p + "self_attn.");
    } else {
      throw ConvertError("config.json: " + std::string(types_key) + "[" + std::to_string(i) + "] is \"" + types[i] +
                         "\" (mamba or attention)");
    }
    norm_of.push_back(p + "input_layernorm.weight");
    kinds.push_back(fb::LayerKind::MlpBlock), prefix.push_back(p + "shared_mlp.");
    norm_of.push_back(p + "post_attention_layernorm.weight");
  }
  FileContent content;
  begin_content<Spec>(&h, kinds, "hf-granitemoehybrid", &content);
  plan(in, &content, h, kinds, nm, prefix, norm_of, true);
  return content;
}

FileContent nemotron_h_content(const ArchInput& in) {
  const json cfg = parse_config(in.config_text);
  std::vector<std::string> unknown;
  check_keys(cfg, kNemotronUsed, kNemotronIgnored, "", &unknown);
  fail_unknown(unknown, in.allow_unknown_config);
  // The block pattern: hybrid_override_pattern (released configs), or the list transformers writes.
  std::string pattern;
  if (cfg.contains("hybrid_override_pattern")) {
    if (!cfg["hybrid_override_pattern"].is_string()) throw ConvertError("config.json: hybrid_override_pattern must be a string");
    pattern = cfg["hybrid_override_pattern"].get<std::string>();
  } else {
    const char* key = cfg.contains("layers_block_type") ? "layers_block_type" : "layer_types";
    if (!cfg.contains(key)) throw ConvertError("config.json: hybrid_override_pattern (or layers_block_type) is missing");
    for (const std::string& t : str_list(cfg[key], key))
      pattern += t == "mamba" || t == "linear_attention" ? 'M'
                 : t == "attention" || t == "full_attention" ? '*'
                 : t == "mlp" ? '-'
                 : t == "moe" ? 'E'
                              : '?';
  }
  const uint64_t L = pattern.size();
  if (L == 0) throw ConvertError("config.json: the block pattern is empty");
  if (cfg.contains("num_hidden_layers") && cfg_uint(cfg, {"num_hidden_layers"}, L, false) != L)
    throw ConvertError("config.json: num_hidden_layers " + cfg["num_hidden_layers"].dump() + " differs from the " +
                       std::to_string(L) + " blocks of hybrid_override_pattern");
  for (uint64_t i = 0; i < L; ++i) {
    if (pattern[i] == 'E')
      throw ConvertError("config.json: block " + std::to_string(i) + " is a mixture-of-experts layer (E); rill runs "
                         "Nemotron-H models of Mamba-2 (M), attention (*) and MLP (-) blocks only");
    if (pattern[i] != 'M' && pattern[i] != '*' && pattern[i] != '-')
      throw ConvertError("config.json: block " + std::to_string(i) + " has the unknown kind '" + pattern.substr(i, 1) +
                         "' (M, *, - and E exist)");
  }
  if (cfg_uint(cfg, {"num_nextn_predict_layers"}, 0, false) != 0)
    throw ConvertError("config.json: num_nextn_predict_layers > 0 (multi-token prediction) is not supported");
  if (cfg.contains("sliding_window") && !cfg["sliding_window"].is_null())
    throw ConvertError("config.json: sliding_window is set; rill runs Nemotron-H's full attention only");
  if (cfg.contains("mlp_hidden_act") && cfg["mlp_hidden_act"] != "relu2")
    throw ConvertError("config.json: mlp_hidden_act " + cfg["mlp_hidden_act"].dump() + " is not supported (relu2 is)");
  if (cfg.contains("mamba_hidden_act") && cfg["mamba_hidden_act"] != "silu")
    throw ConvertError("config.json: mamba_hidden_act " + cfg["mamba_hidden_act"].dump() + " is not supported (silu is)");
  if (cfg_bool(cfg, {"mlp_bias"}, false)) throw ConvertError("config.json: mlp_bias=true is not supported");
  if (cfg_bool(cfg, {"use_bias", "mamba_proj_bias"}, false))
    throw ConvertError("config.json: use_bias / mamba_proj_bias (Mamba-2 projection biases) is not supported");

  // NemotronHConfig's defaults where a field is absent.
  const uint64_t d = cfg_uint(cfg, {"hidden_size"}, 4096, false);
  const uint64_t QH = cfg_uint(cfg, {"num_attention_heads"}, 32, false);
  const uint64_t KV = cfg_uint(cfg, {"num_key_value_heads"}, 8, false);
  const uint64_t D = cfg_uint(cfg, {"head_dim", "attention_head_dim"}, 128, false);
  Spec::Hyper h{};
  h.d_model = size32(d, "hidden_size");
  h.n_layer = size32(L, "blocks");
  h.n_heads = size32(cfg_uint(cfg, {"mamba_num_heads"}, 128, false), "mamba_num_heads");
  h.head_dim = size32(cfg_uint(cfg, {"mamba_head_dim"}, 64, false), "mamba_head_dim");
  h.d_inner = size32(uint64_t{h.n_heads} * h.head_dim, "mamba_num_heads * mamba_head_dim");
  h.d_state = size32(cfg_uint(cfg, {"ssm_state_size"}, 128, false), "ssm_state_size");
  h.d_conv = size32(cfg_uint(cfg, {"conv_kernel"}, 4, false), "conv_kernel");
  h.n_groups = size32(cfg_uint(cfg, {"n_groups"}, 8, false), "n_groups");
  h.norm_groups = h.n_groups;  // Nemotron-H's gated RMSNorm: each group of d_inner / n_groups on its own
  h.attn_heads = size32(QH, "num_attention_heads");
  h.kv_heads = size32(KV, "num_key_value_heads");
  h.attn_head_dim = size32(D, "head_dim");
  h.max_context = context_of(in, cfg);
  h.rope_dims = 0;  // no position embedding
  h.d_ffn = size32(cfg_uint(cfg, {"intermediate_size"}, 21504, false), "intermediate_size");
  h.mlp_act = 1;  // squared ReLU
  dt_limits(cfg, &h.dt_min, &h.dt_max);
  h.rope_theta = 10000.f;
  h.attn_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  h.norm_eps = static_cast<float>(number_or(cfg, "layer_norm_epsilon", 1e-5));
  h.embed_scale = h.residual_scale = h.logits_scale = 1.f;
  h.conv_bias = cfg_bool(cfg, {"use_conv_bias"}, true);
  h.attention_bias = cfg_bool(cfg, {"attention_bias"}, false);
  h.kv_f16 = in.kv_dtype == fb::DType::F16;
  h.mlp_gated = false;
  check_mixer(h, 0);  // the inner width is heads * head dim (expand is not used by NemotronHMamba2Mixer)

  const std::string root = in.ck.find("backbone.embeddings.weight") ? "backbone." : "model.";
  const Names nm{root + "embeddings.weight", root + "norm_f.weight", root + "layers."};
  h.vocab = vocab_rows(in.ck, nm.emb, d, cfg_uint(cfg, {"vocab_size"}, 131072, false));
  h.tied_head = head_tied(in.ck, cfg, nm.emb, false);
  std::vector<fb::LayerKind> kinds;
  std::vector<std::string> prefix, norm_of;
  for (uint64_t i = 0; i < L; ++i) {
    const std::string p = nm.layer + std::to_string(i) + ".";
    kinds.push_back(pattern[i] == 'M' ? fb::LayerKind::Mamba2Mixer
                    : pattern[i] == '*' ? fb::LayerKind::AttentionBlock
                                        : fb::LayerKind::MlpBlock);
    prefix.push_back(p + "mixer.");
    norm_of.push_back(p + "norm.weight");
  }
  FileContent content;
  begin_content<Spec>(&h, kinds, root == "backbone." ? "hf-nemotron_h" : "hf-nemotron_h-transformers", &content);
  plan(in, &content, h, kinds, nm, prefix, norm_of, false);
  return content;
}

}  // namespace convert
}  // namespace rill
