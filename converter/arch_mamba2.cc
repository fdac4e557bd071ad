// Mamba-2 checkpoints in the Hugging Face Mamba2ForCausalLM layout (docs/architectures.md, Mamba-2), or
// mamba_ssm's own (state-spaces/mamba2-*: MambaConfig naming, backbone.embedding.weight).
// in_proj rows are [z (E), x (E), B (G*N), C (G*N), dt (H)]; conv covers x, B, C.
#include <cmath>
#include <limits>

#include "arch/mamba2.h"
#include "arch_common.h"

namespace rill {
namespace convert {

namespace {
const std::set<std::string> kUsedKeys = {
    "vocab_size", "hidden_size", "num_heads", "head_dim", "state_size", "expand", "n_groups", "conv_kernel",
    "num_hidden_layers", "layer_norm_epsilon", "use_bias", "use_conv_bias", "hidden_act", "rms_norm",
    "time_step_limit", "norm_before_gate", "tie_word_embeddings", "model_type", "architectures", "bos_token_id",
    "eos_token_id", "d_input", "d_output", "input_mean", "input_std"};
const std::set<std::string> kIgnoredKeys = {
    "_name_or_path", "torch_dtype", "transformers_version", "pad_token_id", "initializer_range",
    "rescale_prenorm_residual", "time_step_min", "time_step_max", "time_step_floor", "time_step_rank",
    "chunk_size", "use_cache", "residual_in_fp32"};
// mamba_ssm's own config.json (state-spaces/mamba2-*): MambaConfig with ssm_cfg.layer = "Mamba2".
const std::set<std::string> kSsmKeys = {"d_model", "d_intermediate", "n_layer", "vocab_size", "ssm_cfg",
                                        "attn_layer_idx", "attn_cfg", "rms_norm", "pad_vocab_size_multiple",
                                        "tie_embeddings"};
const std::set<std::string> kSsmIgnoredKeys = {"residual_in_fp32", "fused_add_norm"};
const std::set<std::string> kSsmCfgKeys = {"layer", "d_state", "d_conv", "expand", "headdim", "ngroups", "rmsnorm",
                                           "norm_before_gate", "dt_limit", "bias", "conv_bias", "D_has_hdim"};
const std::set<std::string> kSsmCfgIgnored = {"dt_min", "dt_max", "dt_init_floor", "A_init_range", "chunk_size",
                                              "use_mem_eff_path", "d_ssm"};

bool is_mamba_ssm_mamba2(const json& cfg) {
  return !cfg.contains("model_type") && cfg.contains("ssm_cfg") && cfg["ssm_cfg"].is_object() &&
         cfg["ssm_cfg"].value("layer", "") == "Mamba2";
}

// Rewrites a mamba_ssm Mamba-2 config in the Hugging Face field names (defaults: mamba_ssm's Mamba2).
json from_mamba_ssm(const json& c, bool allow_unknown) {
  std::vector<std::string> unknown;
  check_keys(c, kSsmKeys, kSsmIgnoredKeys, "", &unknown);
  const json& s = c["ssm_cfg"];
  check_keys(s, kSsmCfgKeys, kSsmCfgIgnored, "ssm_cfg.", &unknown);
  fail_unknown(unknown, allow_unknown);
  if (cfg_uint(c, {"d_intermediate"}, 0, false) != 0)
    throw ConvertError("config.json: d_intermediate > 0 (an MLP after each mixer) is not supported");
  if (c.contains("attn_layer_idx") && !(c["attn_layer_idx"].is_array() && c["attn_layer_idx"].empty()))
    throw ConvertError("config.json: attn_layer_idx is not empty (attention layers) - not supported");
  if (s.contains("d_ssm") && !s["d_ssm"].is_null())
    throw ConvertError("config.json: ssm_cfg.d_ssm (an SSM narrower than the mixer) is not supported");
  const uint64_t d = cfg_uint(c, {"d_model"}, 0, true), expand = cfg_uint(s, {"expand"}, 2, false);
  const uint64_t P = cfg_uint(s, {"headdim"}, 64, false);
  if (P == 0 || (expand * d) % P != 0)
    throw ConvertError("config.json: expand * d_model is not a multiple of ssm_cfg.headdim");
  json h = {{"model_type", "mamba2"},
            {"hidden_size", d},
            {"num_hidden_layers", cfg_uint(c, {"n_layer"}, 0, true)},
            {"vocab_size", cfg_uint(c, {"vocab_size"}, 0, true)},
            {"state_size", cfg_uint(s, {"d_state"}, 128, false)},
            {"conv_kernel", cfg_uint(s, {"d_conv"}, 4, false)},
            {"expand", expand},
            {"head_dim", P},
            {"num_heads", expand * d / P},
            {"n_groups", cfg_uint(s, {"ngroups"}, 1, false)},
            {"rms_norm", cfg_bool(s, {"rmsnorm"}, true)},
            {"norm_before_gate", cfg_bool(s, {"norm_before_gate"}, false)},
            {"use_bias", cfg_bool(s, {"bias"}, false)},
            {"use_conv_bias", cfg_bool(s, {"conv_bias"}, true)},
            {"tie_word_embeddings", cfg_bool(c, {"tie_embeddings"}, true)}};
  if (s.contains("dt_limit")) h["time_step_limit"] = s["dt_limit"];
  if (!cfg_bool(c, {"rms_norm"}, true)) throw ConvertError("config.json: rms_norm=false (LayerNorm blocks) is not supported");
  return h;
}
}  // namespace

void dt_limits(const json& cfg, float* lo, float* hi) {
  double tmin = 0.0, tmax = std::numeric_limits<double>::infinity();
  if (cfg.contains("time_step_limit") && !cfg["time_step_limit"].is_null()) {
    const json& lim = cfg["time_step_limit"];
    if (!lim.is_array() || lim.size() != 2) throw ConvertError("config.json: time_step_limit must be [min, max]");
    tmin = cfg_number(lim[0], "time_step_limit"), tmax = cfg_number(lim[1], "time_step_limit");
    if (!(tmin >= 0 && tmax > tmin)) throw ConvertError("config.json: time_step_limit needs 0 <= min < max");
  }
  *lo = static_cast<float>(tmin), *hi = static_cast<float>(tmax);
}

void mamba2_mixer_tensors(TensorSet& ts, const std::string& m, int li, uint64_t H, uint64_t P, bool conv_bias,
                          bool d_per_channel) {
  const Checkpoint& ck = ts.ck();
  ts.copy(m + "in_proj.weight", "in_proj", li);
  ts.conv_weight(m + "conv1d.weight", li);  // covers x, B, C
  if (conv_bias) ts.copy(m + "conv1d.bias", "conv_bias", li);
  ts.copy(m + "dt_bias", "dt_bias", li);
  const SrcTensor* al = ts.expect(m + "A_log", {H});
  ts.add("A", li, al, [&ck, al] {
    std::vector<float> a = ck.read_f32(*al);
    for (float& v : a) v = static_cast<float>(-std::exp(static_cast<double>(v)));  // A = -exp(A_log)
    return a;
  });
  // D per head [H] (HF) or per channel [E] (mamba_ssm D_has_hdim): stored per channel [E].
  const SrcTensor* dd = ts.expect(m + "D", d_per_channel ? std::vector<uint64_t>{H * P} : std::vector<uint64_t>{H});
  ts.add("D", li, dd, [&ck, dd, d_per_channel, H, P] {
    const std::vector<float> v = ck.read_f32(*dd);
    if (d_per_channel) return v;
    std::vector<float> o(H * P);
    for (uint64_t h = 0; h < H; ++h)
      for (uint64_t q = 0; q < P; ++q) o[h * P + q] = v[h];
    return o;
  });
  ts.copy(m + "norm.weight", "gate_norm", li);
  ts.copy(m + "out_proj.weight", "out_proj", li);
}

bool mamba2_matches(const ArchInput& in) {
  try {
    const json cfg = parse_config(in.config_text);
    return (cfg.contains("model_type") && cfg["model_type"] == "mamba2") || is_mamba_ssm_mamba2(cfg);
  } catch (const ConvertError&) {
    return false;
  }
}

FileContent mamba2_content(const ArchInput& in) {
  json cfg = parse_config(in.config_text);
  const bool ssm_config = is_mamba_ssm_mamba2(cfg);
  const uint64_t pad = ssm_config ? cfg_uint(cfg, {"pad_vocab_size_multiple"}, 16, false) : 1;
  if (ssm_config) cfg = from_mamba_ssm(cfg, in.allow_unknown_config);
  std::vector<std::string> unknown;
  check_keys(cfg, kUsedKeys, kIgnoredKeys, "", &unknown);
  fail_unknown(unknown, in.allow_unknown_config);
  if (cfg.contains("hidden_act") && cfg["hidden_act"] != "silu")
    throw ConvertError("config.json: hidden_act " + cfg["hidden_act"].dump() + " is not supported (silu is)");
  if (cfg.contains("rms_norm") && cfg["rms_norm"] != true)
    throw ConvertError("config.json: rms_norm=false (no gated norm) is not supported");
  if (cfg_bool(cfg, {"norm_before_gate"}, false))
    throw ConvertError("config.json: norm_before_gate=true is not supported (released Mamba-2 models gate first)");
  if (cfg_bool(cfg, {"use_bias"}, false))
    throw ConvertError("config.json: use_bias=true (in/out projection biases) is not supported");

  const uint64_t d = cfg_uint(cfg, {"hidden_size"}, 0, true);
  const uint64_t L = cfg_uint(cfg, {"num_hidden_layers"}, 0, true);
  const VectorIo io = read_vector_io(cfg);  // a sensor model: encoder and decoder instead of embedding and head
  const uint64_t vocab = io.d_input ? 0 : cfg_uint(cfg, {"vocab_size"}, 0, true);
  const uint64_t H = cfg_uint(cfg, {"num_heads"}, 0, true);
  const uint64_t P = cfg_uint(cfg, {"head_dim"}, 0, true);
  const uint64_t N = cfg_uint(cfg, {"state_size"}, 128, false);
  const uint64_t G = cfg_uint(cfg, {"n_groups"}, 1, false);
  const uint64_t K = cfg_uint(cfg, {"conv_kernel"}, 4, false);
  const uint64_t expand = cfg_uint(cfg, {"expand"}, 2, false);
  const double eps = cfg.contains("layer_norm_epsilon") ? cfg_number(cfg["layer_norm_epsilon"], "layer_norm_epsilon") : 1e-5;
  float tmin, tmax;
  dt_limits(cfg, &tmin, &tmax);
  if (d == 0 || L == 0 || H == 0 || P == 0 || N == 0 || G == 0 || K < 2 || (vocab == 0 && !io.d_input))
    throw ConvertError("config.json: hidden_size, num_hidden_layers, num_heads, head_dim, state_size, n_groups and "
                       "vocab_size must be positive, conv_kernel >= 2");
  for (const uint64_t v : {d, L, H, P, N, G, K}) size32(v, "a size in config.json");  // products fit 64 bits
  const uint64_t E = H * P;
  if (expand * d != E)
    throw ConvertError("config.json: expand * hidden_size = " + std::to_string(expand * d) +
                       " but num_heads * head_dim = " + std::to_string(E));
  if (H % G != 0)
    throw ConvertError("config.json: num_heads " + std::to_string(H) + " is not a multiple of n_groups " +
                       std::to_string(G));
  if (!(eps > 0 && eps < 1)) throw ConvertError("config.json: layer_norm_epsilon must be in (0, 1)");
  const uint64_t in_rows = 2 * E + 2 * G * N + H;

  const Checkpoint& ck = in.ck;
  std::string emb_name = ck.find("backbone.embedding.weight") ? "backbone.embedding.weight" : "backbone.embeddings.weight";
  const SrcTensor* emb = ck.find(emb_name);
  if (!io.d_input && (!emb || emb->shape.size() != 2 || emb->shape[1] != d))
    throw ConvertError("checkpoint: " + emb_name + " missing or not [vocab, " + std::to_string(d) + "]");
  const uint64_t V = io.d_input ? 0 : emb->shape[0];
  if (pad > 1 && V != vocab && V != (vocab + pad - 1) / pad * pad)
    throw ConvertError("tensor " + emb_name + " has " + std::to_string(V) + " rows, config vocab_size is " +
                       std::to_string(vocab) + " (padded to a multiple of " + std::to_string(pad) + ": " +
                       std::to_string((vocab + pad - 1) / pad * pad) + ")");
  if (V < vocab) throw ConvertError("tensor " + emb_name + " has " + std::to_string(V) + " rows, vocab_size is " +
                                    std::to_string(vocab));
  const SrcTensor* in0 = ck.find("backbone.layers.0.mixer.in_proj.weight");
  const std::string hint = in0 && in0->shape.size() == 2 && in0->shape[0] > in_rows
                               ? "; in_proj has more rows than 2*E + 2*n_groups*state_size + num_heads: if that is "
                                 "the extra gated-MLP branch (d_mlp > 0), rill does not support it"
                               : "";
  const bool has_head = ck.find("lm_head.weight") != nullptr || io.d_input;
  if (!has_head && !cfg_bool(cfg, {"tie_word_embeddings"}, false))
    throw ConvertError("checkpoint: tie_word_embeddings is false but lm_head.weight is missing");
  bool tied = !has_head;
  const bool conv_bias = ck.find("backbone.layers.0.mixer.conv1d.bias") != nullptr;
  const SrcTensor* d0 = ck.find("backbone.layers.0.mixer.D");
  const bool d_per_channel = d0 && d0->shape == std::vector<uint64_t>{E};

  if (has_head && cfg_bool(cfg, {"tie_word_embeddings"}, false) && head_is_embedding(ck, emb_name)) tied = true;
  using Spec = spec::Mamba2;
  Spec::Hyper h{.d_model = size32(d, "hidden_size"),
                .n_layer = size32(L, "num_hidden_layers"),
                .vocab = size32(V, "vocab_size"),
                .d_inner = size32(E, "num_heads * head_dim"),
                .d_state = size32(N, "state_size"),
                .d_conv = size32(K, "conv_kernel"),
                .n_heads = size32(H, "num_heads"),
                .head_dim = size32(P, "head_dim"),
                .n_groups = size32(G, "n_groups"),
                .norm_eps = static_cast<float>(eps),
                .dt_min = tmin,
                .dt_max = tmax,
                .tied_head = tied,
                .conv_bias = conv_bias};
  FileContent content;
  begin_content<Spec>(&h, std::vector<fb::LayerKind>(L, fb::LayerKind::Mamba2Mixer),
                      io.d_input ? "rill-mamba2-vector"
                      : emb_name == "backbone.embedding.weight" ? "mamba_ssm-mamba2" : "hf-mamba2",
                      &content);
  TensorSet ts = TensorSet::of<Spec>(ck, &content, h, make_ends(Spec::kEnds, d, V, tied, io), in.matrix_dtype);
  if (io.d_input) {
    ts.vector_io(io);
    ts.copy("backbone.norm_f.weight", "norm_f", -1);
  } else {
    ts.lm_tensors(emb_name);
  }
  for (uint64_t i = 0; i < L; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".", m = p + "mixer.";
    const int li = static_cast<int>(i);
    ts.copy(p + "norm.weight", "norm", li);
    mamba2_mixer_tensors(ts, m, li, H, P, conv_bias, d_per_channel);
  }
  ts.finish("d_model=" + std::to_string(d) + " num_hidden_layers=" + std::to_string(L) + " heads=" + std::to_string(H) +
            " head_dim=" + std::to_string(P) + " n_groups=" + std::to_string(G) + " state=" + std::to_string(N) +
            " conv_kernel=" + std::to_string(K) + hint);
  return content;
}

}  // namespace convert
}  // namespace rill
