// RecurrentGemma (Griffin) checkpoints in the Hugging Face layout (RecurrentGemmaForCausalLM,
// model_type "recurrent_gemma"). Every config field that changes the math is read; the rest are known
// by name or refused. The math is transformers' modeling_recurrent_gemma.py:
//   Gemma RMSNorm x (1 + w)          -> stored as plain weights 1 + w
//   RG-LRU gates x @ W[h] + b[h]     -> W[h] transposed to [out, in], blocks stacked [lru, lru / heads]
//   softplus(recurrent_param)        -> c = 8 softplus(Λ), so a = exp(-c sigmoid(gate))
//   embedding x sqrt(hidden) (bf16)  -> Params.embed_scale
#include <cmath>
#include <cstring>

#include "arch/recurrent_gemma.h"
#include "arch_common.h"

namespace rill {
namespace convert {

namespace {

const std::set<std::string> kUsedKeys = {
    "model_type", "architectures", "num_hidden_layers", "vocab_size", "hidden_size", "intermediate_size",
    "num_attention_heads", "num_key_value_heads", "head_dim", "lru_width", "attention_window_size", "conv1d_width",
    "logits_soft_cap", "rms_norm_eps", "hidden_activation", "partial_rotary_factor", "rope_theta", "block_types",
    "attention_bias", "embeddings_scale_by_sqrt_dim", "tie_word_embeddings", "rope_parameters", "rope_scaling",
    "bos_token_id", "eos_token_id", "pad_token_id"};
// Training-time settings and runtime hints that do not change a forward pass.
const std::set<std::string> kIgnoredKeys = {"_name_or_path", "torch_dtype", "dtype", "transformers_version", "use_cache",
                                            "attention_dropout", "w_init_variance_scale",
                                            "final_w_init_variance_scale", "initializer_range"};

// sqrt(d) as transformers holds it: a bf16 tensor (round to nearest even), multiplied in f32.
float bf16_round(double v) {
  float f = static_cast<float>(v);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000u;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

bool recurrent_gemma_matches(const ArchInput& in) { return model_type_is(in, "recurrent_gemma"); }

FileContent recurrent_gemma_content(const ArchInput& in) {
  const json cfg = parse_config(in.config_text);
  std::vector<std::string> unknown;
  check_keys(cfg, kUsedKeys, kIgnoredKeys, "", &unknown);
  fail_unknown(unknown, in.allow_unknown_config);

  // 1. Hyper-parameters, with transformers' defaults (RecurrentGemmaConfig).
  const uint64_t L = cfg_uint(cfg, {"num_hidden_layers"}, 26, false);
  const uint64_t V_cfg = cfg_uint(cfg, {"vocab_size"}, 256000, false);
  const uint64_t d = cfg_uint(cfg, {"hidden_size"}, 2560, false);
  const uint64_t I = cfg_uint(cfg, {"intermediate_size"}, 3 * d, false);
  const uint64_t H = cfg_uint(cfg, {"num_attention_heads"}, 10, false);
  const uint64_t KV = cfg.contains("num_key_value_heads") && !cfg["num_key_value_heads"].is_null()
                          ? cfg_uint(cfg, {"num_key_value_heads"}, 0, true) : H;
  const uint64_t Dh = cfg.contains("head_dim") && !cfg["head_dim"].is_null() ? cfg_uint(cfg, {"head_dim"}, 0, true)
                                                                              : (H ? d / H : 0);
  const uint64_t Wl = cfg.contains("lru_width") && !cfg["lru_width"].is_null() ? cfg_uint(cfg, {"lru_width"}, 0, true) : d;
  const uint64_t window = cfg_uint(cfg, {"attention_window_size"}, 2048, false);
  const uint64_t K = cfg_uint(cfg, {"conv1d_width"}, 4, false);
  const double eps = cfg.contains("rms_norm_eps") ? cfg_number(cfg["rms_norm_eps"], "rms_norm_eps") : 1e-6;
  double cap = 30.0;
  if (cfg.contains("logits_soft_cap")) cap = cfg["logits_soft_cap"].is_null() ? 0.0 : cfg_number(cfg["logits_soft_cap"], "logits_soft_cap");
  double theta = 10000.0, prf = 0.5;
  if (cfg.contains("rope_theta")) theta = cfg_number(cfg["rope_theta"], "rope_theta");
  if (cfg.contains("partial_rotary_factor")) prf = cfg_number(cfg["partial_rotary_factor"], "partial_rotary_factor");
  for (const char* key : {"rope_parameters", "rope_scaling"}) {  // newer transformers nest them
    if (!cfg.contains(key) || cfg[key].is_null()) continue;
    const json& r = cfg[key];
    if (!r.is_object()) throw ConvertError(std::string("config.json: ") + key + " must be an object");
    for (const char* t : {"rope_type", "type"})  // the kind first: it says why the other fields are there
      if (r.contains(t) && r[t] != "default")
        throw ConvertError(std::string("config.json: ") + key + "." + t + " " + r[t].dump() +
                           " is not supported (default RoPE only)");
    for (auto it = r.begin(); it != r.end(); ++it) {
      if (it.key() == "rope_type" || it.key() == "type") {
        continue;
      } else if (it.key() == "rope_theta") {
        theta = cfg_number(it.value(), "rope_parameters.rope_theta");
      } else if (it.key() == "partial_rotary_factor") {
        prf = cfg_number(it.value(), "rope_parameters.partial_rotary_factor");
      } else if (!in.allow_unknown_config) {
        throw ConvertError(std::string("config.json: ") + key + "." + it.key() + " is not known to rill");
      }
    }
  }
  const std::string act = cfg.contains("hidden_activation") && cfg["hidden_activation"].is_string()
                              ? cfg["hidden_activation"].get<std::string>() : "gelu_pytorch_tanh";
  if (act != "gelu_pytorch_tanh" && act != "gelu_tanh")
    throw ConvertError("config.json: hidden_activation \"" + act + "\" is not supported (gelu_pytorch_tanh)");
  const bool attn_bias = cfg_bool(cfg, {"attention_bias"}, false);
  const bool scale_emb = cfg_bool(cfg, {"embeddings_scale_by_sqrt_dim"}, true);
  const bool tie_cfg = cfg_bool(cfg, {"tie_word_embeddings"}, true);
  std::vector<std::string> pattern = {"recurrent", "recurrent", "attention"};
  if (cfg.contains("block_types")) {
    const json& bt = cfg["block_types"];
    if (!bt.is_array() || bt.empty()) throw ConvertError("config.json: block_types must be a non-empty list");
    pattern.clear();
    for (const json& t : bt) {
      if (t != "recurrent" && t != "attention")
        throw ConvertError("config.json: block_types entry " + t.dump() + " is not supported (recurrent, attention)");
      pattern.push_back(t.get<std::string>());
    }
  }

  if (L == 0 || d == 0 || H == 0 || KV == 0 || Dh == 0 || Wl == 0 || window == 0 || K < 2 || V_cfg == 0 || I < 2)
    throw ConvertError("config.json: num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads, head_dim, "
                       "lru_width, attention_window_size, vocab_size must be positive, conv1d_width >= 2, "
                       "intermediate_size >= 2");
  if (H * Dh != d)
    throw ConvertError("config.json: num_attention_heads " + std::to_string(H) + " x head_dim " + std::to_string(Dh) +
                       " != hidden_size " + std::to_string(d) + " (transformers' attention output needs them equal)");
  if (H % KV != 0) throw ConvertError("config.json: num_attention_heads is not a multiple of num_key_value_heads");
  if (Wl % H != 0) throw ConvertError("config.json: lru_width is not a multiple of num_attention_heads");
  if (I % 2 != 0) throw ConvertError("config.json: intermediate_size must be even (each MLP branch is half of it)");
  // transformers rotates the first of int(1 / factor) chunks of each head, with int(head_dim factor)
  // frequencies' worth of channels: the two agree only when 1 / factor is a whole number dividing head_dim.
  const uint64_t chunks = prf > 0 ? static_cast<uint64_t>(1.0 / prf) : 0;
  const uint64_t R = static_cast<uint64_t>(static_cast<double>(Dh) * prf);
  if (!(prf > 0 && prf <= 1) || chunks == 0 || Dh % chunks != 0 || Dh / chunks != R || R % 2 != 0)
    throw ConvertError("config.json: partial_rotary_factor " + std::to_string(prf) + " with head_dim " +
                       std::to_string(Dh) + " is not supported (1 / factor must divide head_dim into even parts)");
  if (!(eps > 0 && eps < 1)) throw ConvertError("config.json: rms_norm_eps must be in (0, 1)");
  if (!(theta > 1 && theta < 1e12)) throw ConvertError("config.json: rope_theta must be in (1, 1e12)");
  if (!(cap >= 0 && cap < 1e6)) throw ConvertError("config.json: logits_soft_cap must be in [0, 1e6)");
  for (const uint64_t v : {L, V_cfg, d, I, H, KV, Dh, Wl, window, K}) size32(v, "a size in config.json");
  const uint64_t F = I / 2, bw = Wl / H;

  // 2. Tensors.
  const Checkpoint& ck = in.ck;
  const std::string emb_name = "model.embed_tokens.weight";
  const SrcTensor* emb = ck.find(emb_name);
  if (!emb) throw ConvertError("checkpoint: no " + emb_name);
  if (emb->shape.size() != 2 || emb->shape[1] != d)
    throw ConvertError("tensor " + emb_name + ": expected [vocab, " + std::to_string(d) + "], got " +
                       shape_str(emb->shape));
  const uint64_t V = emb->shape[0];
  if (V != V_cfg)
    throw ConvertError("tensor " + emb_name + " has " + std::to_string(V) + " rows, config vocab_size is " +
                       std::to_string(V_cfg));
  const bool has_head = ck.find("lm_head.weight") != nullptr;
  if (!has_head && !tie_cfg) throw ConvertError("checkpoint: tie_word_embeddings is false but lm_head.weight is missing");

  bool tied = !has_head;
  if (has_head && tie_cfg && head_is_embedding(ck, emb_name)) tied = true;
  std::vector<fb::LayerKind> kinds;
  for (uint64_t i = 0; i < L; ++i)
    kinds.push_back(pattern[i % pattern.size()] == "attention" ? fb::LayerKind::LocalAttentionBlock
                                                               : fb::LayerKind::RglruBlock);
  using Spec = spec::RecurrentGemma;
  Spec::Hyper h{.d_model = size32(d, "hidden_size"),
                .n_layer = size32(L, "num_hidden_layers"),
                .vocab = size32(V, "vocab_size"),
                .lru_width = size32(Wl, "lru_width"),
                .d_ffn = size32(F, "intermediate_size / 2"),
                .n_heads = size32(H, "num_attention_heads"),
                .n_kv_heads = size32(KV, "num_key_value_heads"),
                .head_dim = size32(Dh, "head_dim"),
                .window = size32(window, "attention_window_size"),
                .conv_width = size32(K, "conv1d_width"),
                .rope_dims = size32(R, "rotated channels"),
                .rope_theta = static_cast<float>(theta),
                .norm_eps = static_cast<float>(eps),
                .soft_cap = static_cast<float>(cap),
                .embed_scale = scale_emb ? bf16_round(std::sqrt(static_cast<double>(d))) : 1.f,
                .tied_head = tied,
                .attention_bias = attn_bias,
                .kv_f16 = in.kv_dtype == fb::DType::F16,
                .block = 0};
  FileContent content;
  begin_content<Spec>(&h, kinds, "hf-recurrent-gemma", &content);
  TensorSet ts = TensorSet::of<Spec>(ck, &content, h, make_ends(Spec::kEnds, d, V, tied, VectorIo{}), in.matrix_dtype);
  ts.copy(emb_name, "embedding", -1);
  if (!tied) ts.copy("lm_head.weight", "head", -1);
  else if (has_head) ts.expect("lm_head.weight", {V, d});  // equal to the embedding: consumed
  // Gemma's RMSNorm multiplies by (1 + w): stored as the plain weight.
  auto norm = [&](const std::string& src, const std::string& name, int layer) {
    const SrcTensor* t = ts.expect(src, {d});
    ts.add(name, layer, t, [&ck, t] {
      std::vector<float> w = ck.read_f32(*t);
      for (float& v : w) v = 1.f + v;
      return w;
    });
  };
  norm("model.final_norm.weight", "norm_f", -1);
  // A Linear layer: its weight as `name` and its bias as `name`_b.
  auto linear = [&](const std::string& src, const std::string& name, int layer) {
    ts.copy(src + ".weight", name, layer);
    ts.copy(src + ".bias", name + "_b", layer);
  };
  int n_attention = 0;
  for (uint64_t i = 0; i < L; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".", tb = p + "temporal_block.", mb = p + "mlp_block.";
    const int li = static_cast<int>(i);
    const bool attention = kinds[i] == fb::LayerKind::LocalAttentionBlock;
    n_attention += attention;
    norm(p + "temporal_pre_norm.weight", "norm1", li);
    norm(p + "channel_pre_norm.weight", "norm2", li);
    linear(mb + "gate_proj", "gate", li);
    linear(mb + "up_proj", "up", li);
    linear(mb + "down_proj", "down", li);
    if (attention) {
      ts.copy(tb + "q_proj.weight", "q", li);
      ts.copy(tb + "k_proj.weight", "k", li);
      ts.copy(tb + "v_proj.weight", "v", li);
      if (attn_bias) {
        ts.copy(tb + "q_proj.bias", "q_b", li);
        ts.copy(tb + "k_proj.bias", "k_b", li);
        ts.copy(tb + "v_proj.bias", "v_b", li);
      }
      linear(tb + "o_proj", "o", li);
    } else {
      linear(tb + "linear_y", "lin_y", li);
      linear(tb + "linear_x", "lin_x", li);
      linear(tb + "linear_out", "lin_out", li);
      ts.conv_weight(tb + "conv_1d.weight", li);
      ts.copy(tb + "conv_1d.bias", "conv_bias", li);
      for (const char* g : {"input", "recurrent"}) {
        const std::string name = std::string(g) == "input" ? "gate_x" : "gate_a";
        const SrcTensor* w = ts.expect(tb + "rg_lru." + g + "_gate_weight", {H, bw, bw});
        ts.add(name, li, w, [&ck, w, H, bw] {
          const std::vector<float> src = ck.read_f32(*w);  // [H, in, out]: x @ W[h]
          std::vector<float> o(H * bw * bw);               // block h rows [out], columns [in]
          for (uint64_t h = 0; h < H; ++h)
            for (uint64_t a = 0; a < bw; ++a)
              for (uint64_t b = 0; b < bw; ++b) o[(h * bw + b) * bw + a] = src[(h * bw + a) * bw + b];
          return o;
        });
        ts.add(name + "_b", li, ts.expect(tb + "rg_lru." + g + "_gate_bias", {H, bw}));
      }
      const SrcTensor* lam = ts.expect(tb + "rg_lru.recurrent_param", {Wl});
      ts.add("lru_c", li, lam, [&ck, lam] {
        std::vector<float> v = ck.read_f32(*lam);
        for (float& x : v) {  // 8 softplus(x), PyTorch's threshold 20
          const double t = x;
          x = static_cast<float>(8.0 * (t > 20 ? t : std::log1p(std::exp(t))));
        }
        return v;
      });
    }
  }
  ts.finish("hidden_size=" + std::to_string(d) + " num_hidden_layers=" + std::to_string(L) + " lru_width=" +
            std::to_string(Wl) + " heads=" + std::to_string(H) + "/" + std::to_string(KV) + "x" + std::to_string(Dh) +
            " intermediate_size=" + std::to_string(I) + " attention layers=" + std::to_string(n_attention));
  return content;
}

}  // namespace convert
}  // namespace rill
