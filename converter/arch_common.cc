#include "arch_common.h"

#include <cmath>
#include <limits>
#include <sstream>

namespace rill {
namespace convert {

json parse_config(const std::string& text) {
  std::string t;
  t.reserve(text.size() + 16);
  bool in_str = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_str) {
      t += c;
      if (c == '\\' && i + 1 < text.size()) t += text[++i];
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') {
      in_str = true;
      t += c;
      continue;
    }
    bool matched = false;
    for (const char* tok : {"-Infinity", "Infinity", "NaN"}) {
      const size_t n = std::char_traits<char>::length(tok);
      if (text.compare(i, n, tok) == 0) {
        t += '"';
        t += tok;
        t += '"';
        i += n - 1;
        matched = true;
        break;
      }
    }
    if (!matched) t += c;
  }
  json j = json::parse(t, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw ConvertError("config.json: not a JSON object");
  return j;
}

uint64_t cfg_uint(const json& cfg, std::initializer_list<const char*> names, uint64_t def, bool required) {
  bool found = false;
  uint64_t v = def;
  std::string first;
  for (const char* n : names) {
    if (!cfg.contains(n) || cfg[n].is_null()) continue;
    if (!cfg[n].is_number_integer() || cfg[n].get<int64_t>() < 0)
      throw ConvertError(std::string("config.json: \"") + n + "\" must be a non-negative integer");
    const uint64_t x = cfg[n].get<uint64_t>();
    if (found && x != v)
      throw ConvertError("config.json: \"" + first + "\" = " + std::to_string(v) + " but \"" + n + "\" = " +
                         std::to_string(x));
    if (!found) first = n;
    found = true;
    v = x;
  }
  if (!found && required) {
    std::string all;
    for (const char* n : names) all += std::string(all.empty() ? "" : " or ") + "\"" + n + "\"";
    throw ConvertError("config.json: missing " + all);
  }
  return v;
}

bool cfg_bool(const json& cfg, std::initializer_list<const char*> names, bool def) {
  for (const char* n : names) {
    if (!cfg.contains(n) || cfg[n].is_null()) continue;
    if (!cfg[n].is_boolean()) throw ConvertError(std::string("config.json: \"") + n + "\" must be true or false");
    return cfg[n].get<bool>();
  }
  return def;
}

double cfg_number(const json& v, const char* what) {
  if (v.is_number()) return v.get<double>();
  if (v == "Infinity") return std::numeric_limits<double>::infinity();
  if (v == "-Infinity") return -std::numeric_limits<double>::infinity();
  throw ConvertError(std::string("config.json: \"") + what + "\" must be a number");
}

void check_keys(const json& cfg, const std::set<std::string>& used, const std::set<std::string>& ignored,
                const std::string& prefix, std::vector<std::string>* unknown) {
  for (auto& kv : cfg.items())
    if (!used.count(kv.key()) && !ignored.count(kv.key())) unknown->push_back(prefix + kv.key());
}

void fail_unknown(const std::vector<std::string>& unknown, bool allow) {
  if (unknown.empty() || allow) return;
  std::string list;
  for (auto& u : unknown) list += (list.empty() ? "" : ", ") + u;
  throw ConvertError("config.json: field(s) rill does not understand: " + list +
                     " (check the architecture; --allow-unknown-config converts anyway)");
}

std::string shape_str(const std::vector<uint64_t>& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

uint32_t size32(uint64_t v, const char* what) {
  if (v > 0xFFFFFFFFu) throw ConvertError(std::string(what) + " = " + std::to_string(v) + " is too large");
  return static_cast<uint32_t>(v);
}

spec::Ends make_ends(const spec::EndsSpec& es, uint64_t d, uint64_t V, bool tied, const VectorIo& io) {
  if (!io.d_input && V == 0) throw ConvertError("the embedding has no rows (vocab_size 0)");
  spec::Ends e;
  e.d_model = size32(d, "d_model");
  e.vocab = size32(V, "vocab_size");
  e.d_input = static_cast<uint32_t>(io.d_input);
  e.d_output = static_cast<uint32_t>(io.d_input ? io.d_output : V);
  e.norm_f = es.norm_f;
  e.vectors = io.d_input != 0;
  e.tokens = !e.vectors;
  e.untied = e.tokens && !tied;
  e.standardized = !io.mean.empty();
  return e;
}

bool head_is_embedding(const Checkpoint& ck, const std::string& emb_name) {
  const SrcTensor* h = ck.find("lm_head.weight");
  const SrcTensor* e = ck.find(emb_name);
  return h && e && h->shape == e->shape && ck.read_f32(*h) == ck.read_f32(*e);
}

const SrcTensor* TensorSet::expect(const std::string& name, const std::vector<uint64_t>& shape) {
  const SrcTensor* t = ck_.find(name);
  consumed_.insert(name);
  if (!t) {
    problems_.push_back("missing tensor " + name + " " + shape_str(shape));
    return nullptr;
  }
  if (t->shape != shape) {
    problems_.push_back("tensor " + name + ": expected " + shape_str(shape) + ", got " + shape_str(t->shape));
    return nullptr;
  }
  return t;
}

const SpecTensor& TensorSet::spec_tensor(const std::string& name, int layer) const {
  for (const SpecTensor& t : expected_)
    if (t.layer == layer && t.name == name) return t;
  throw ConvertError("converter: the spec has no tensor " + (layer < 0 ? name : "layers." + std::to_string(layer) +
                     "." + name) + " for this model (runtime/src/arch/)");
}

const std::vector<uint64_t>& TensorSet::shape(const std::string& name, int layer) const {
  return spec_tensor(name, layer).shape;
}

void TensorSet::add(const std::string& name, int layer, const SrcTensor* src, std::function<std::vector<float>()> values) {
  const SpecTensor& st = spec_tensor(name, layer);
  if (!src) return;
  if (!planned_.insert({layer, name}).second)
    throw ConvertError("converter: tensor " + name + " of layer " + std::to_string(layer) + " planned twice");
  if (!values) {
    const Checkpoint* ck = &ck_;
    values = [ck, src] { return ck->read_f32(*src); };
  }
  FileTensor t;
  t.name = name;
  t.layer = layer;
  t.dclass = st.dclass;
  t.dtype = st.dclass == spec::DClass::kF32 ? fb::DType::F32 : matrix_dtype_;
  t.shape = st.shape;
  t.source = src->name;
  t.values = std::move(values);
  content_->tensors.push_back(std::move(t));
}

void TensorSet::copy(const std::string& src_name, const std::string& name, int layer) {
  add(name, layer, expect(src_name, shape(name, layer)));
}

void TensorSet::conv_weight(const std::string& src_name, int layer) {
  const std::vector<uint64_t>& s = shape("conv_weight", layer);  // [K, channels]
  const uint64_t K = s.at(0), channels = s.at(1);
  const SrcTensor* cw = expect(src_name, {channels, 1, K});
  const Checkpoint* ck = &ck_;
  add("conv_weight", layer, cw, [ck, cw, channels, K] {
    std::vector<float> w = ck->read_f32(*cw);  // [channels, 1, K]
    std::vector<float> o(K * channels);        // [K, channels]
    for (uint64_t c = 0; c < channels; ++c)
      for (uint64_t k = 0; k < K; ++k) o[k * channels + c] = w[c * K + k];
    ck->recycle(std::move(w));
    return o;
  });
}

void TensorSet::lm_tensors(const std::string& emb_name, const std::string& norm_name) {
  copy(emb_name, "embedding", -1);
  copy(norm_name, "norm_f", -1);
  bool untied = false;
  for (const SpecTensor& t : expected_) untied |= t.layer < 0 && t.name == "head";
  if (untied) copy("lm_head.weight", "head", -1);
  else if (ck_.find("lm_head.weight")) consumed_.insert("lm_head.weight");  // equal to the embedding
}

VectorIo read_vector_io(const json& cfg) {
  VectorIo io;
  io.d_input = cfg_uint(cfg, {"d_input"}, 0, false);
  io.d_output = cfg_uint(cfg, {"d_output"}, 0, false);
  if (!io.d_input != !io.d_output)
    throw ConvertError("config.json: a vector model needs both d_input and d_output");
  if (io.d_input > (1u << 16) || io.d_output > (1u << 16))
    throw ConvertError("config.json: d_input and d_output must be at most 65536");
  const bool has_mean = cfg.contains("input_mean"), has_std = cfg.contains("input_std");
  if (has_mean != has_std) throw ConvertError("config.json: input_mean and input_std come together");
  if (has_mean && !io.d_input) throw ConvertError("config.json: input_mean/input_std without d_input");
  for (const char* key : {"input_mean", "input_std"}) {
    if (!cfg.contains(key)) continue;
    const json& v = cfg[key];
    if (!v.is_array() || v.size() != io.d_input)
      throw ConvertError(std::string("config.json: ") + key + " must be a list of d_input = " +
                         std::to_string(io.d_input) + " numbers");
    std::vector<float>& out = key[6] == 'm' ? io.mean : io.std;
    for (const json& x : v) {
      const double d = cfg_number(x, key);
      if (!std::isfinite(d) || (key[6] == 's' && !(d > 0)))
        throw ConvertError(std::string("config.json: ") + key + " holds " + x.dump() +
                           (key[6] == 's' ? " (each must be finite and > 0)" : " (each must be finite)"));
      out.push_back(static_cast<float>(d));
    }
  }
  return io;
}

void TensorSet::vector_io(const VectorIo& io) {
  copy("encoder.weight", "encoder", -1);
  copy("encoder.bias", "encoder_bias", -1);
  copy("decoder.weight", "decoder", -1);
  copy("decoder.bias", "decoder_bias", -1);
  if (!io.mean.empty()) {
    add_computed("input_mean", -1, "config.json input_mean", io.mean);
    add_computed("input_std", -1, "config.json input_std", io.std);
  }
  content_->d_input = static_cast<uint32_t>(io.d_input);
  content_->d_output = static_cast<uint32_t>(io.d_output);
}

void TensorSet::add_computed(const std::string& name, int layer, const std::string& source, std::vector<float> values) {
  const SpecTensor& st = spec_tensor(name, layer);
  if (!planned_.insert({layer, name}).second)
    throw ConvertError("converter: tensor " + name + " of layer " + std::to_string(layer) + " planned twice");
  FileTensor t;
  t.name = name;
  t.layer = layer;
  t.dclass = st.dclass;
  t.dtype = st.dclass == spec::DClass::kF32 ? fb::DType::F32 : matrix_dtype_;
  t.shape = st.shape;
  t.source = source;
  t.values = [v = std::move(values)] { return v; };
  content_->tensors.push_back(std::move(t));
}

void TensorSet::finish(const std::string& what) {
  for (const auto& kv : ck_.tensors())
    if (!consumed_.count(kv.first)) problems_.push_back("unexpected tensor " + kv.first + " " + shape_str(kv.second.shape));
  if (!problems_.empty()) {
    std::string msg = "checkpoint does not match config.json (" + std::to_string(problems_.size()) + " problem" +
                      (problems_.size() > 1 ? "s" : "") + "; " + what + "):";
    for (size_t i = 0; i < problems_.size() && i < 20; ++i) msg += "\n  " + problems_[i];
    if (problems_.size() > 20) msg += "\n  ... and " + std::to_string(problems_.size() - 20) + " more";
    throw ConvertError(msg);
  }
  // Every tensor the runtime will bind must be in the file.
  for (const SpecTensor& t : expected_)
    if (!planned_.count({t.layer, t.name}))
      throw ConvertError("converter: no checkpoint tensor was mapped onto " +
                         (t.layer < 0 ? t.name : "layers." + std::to_string(t.layer) + "." + t.name) +
                         ", which the spec requires (runtime/src/arch/)");
}

bool cfg_null(const json& cfg, const char* key) { return !cfg.contains(key) || cfg[key].is_null(); }

bool model_type_is(const ArchInput& in, const char* model_type) {
  try {
    const json cfg = parse_config(in.config_text);
    return cfg.contains("model_type") && cfg["model_type"] == model_type;
  } catch (const ConvertError&) {
    return false;
  }
}

std::vector<float> transpose(const std::vector<float>& a, uint64_t rows, uint64_t cols) {
  std::vector<float> o(a.size());
  for (uint64_t r = 0; r < rows; ++r)
    for (uint64_t c = 0; c < cols; ++c) o[c * rows + r] = a[r * cols + c];
  return o;
}

std::vector<float> layernorm_rows(std::vector<float> x, const std::vector<float>& w, const std::vector<float>& b,
                                  uint64_t rows, uint64_t C, double eps) {
  for (uint64_t r = 0; r < rows; ++r) {
    float* row = x.data() + r * C;
    double mu = 0, var = 0;
    for (uint64_t i = 0; i < C; ++i) mu += row[i];
    mu /= static_cast<double>(C);
    for (uint64_t i = 0; i < C; ++i) var += (row[i] - mu) * (row[i] - mu);
    const double inv = 1.0 / std::sqrt(var / static_cast<double>(C) + eps);
    for (uint64_t i = 0; i < C; ++i) row[i] = static_cast<float>((row[i] - mu) * inv * w[i] + b[i]);
  }
  return x;
}

void add_concat(TensorSet& ts, const std::string& out, int layer, std::vector<const SrcTensor*> srcs) {
  for (const SrcTensor* t : srcs)
    if (!t) return;
  const Checkpoint& ck = ts.ck();
  ts.add(out, layer, srcs[0], [&ck, srcs] {
    std::vector<float> o;
    for (const SrcTensor* t : srcs) {
      std::vector<float> v = ck.read_f32(*t);
      o.insert(o.end(), v.begin(), v.end());
      ck.recycle(std::move(v));
    }
    return o;
  });
}

void stack_rows(TensorSet& ts, const std::vector<RowPart>& parts, uint64_t cols, const std::string& out, int layer) {
  std::vector<const SrcTensor*> srcs;
  for (const RowPart& p : parts) srcs.push_back(ts.expect(p.name, {p.rows, cols}));
  add_concat(ts, out, layer, std::move(srcs));
}

void stack_convs(TensorSet& ts, const std::vector<RowPart>& parts, uint64_t Kc, int layer) {
  const Checkpoint& ck = ts.ck();
  for (const RowPart& p : parts) {
    const std::string bias = p.name.substr(0, p.name.rfind('.')) + ".bias";
    if (ck.find(bias)) throw ConvertError("checkpoint: " + bias + ": convolution biases are not supported");
  }
  std::vector<const SrcTensor*> srcs;
  uint64_t total = 0;
  for (const RowPart& p : parts) srcs.push_back(ts.expect(p.name, {p.rows, 1, Kc})), total += p.rows;
  for (const SrcTensor* t : srcs)
    if (!t) return;
  ts.add("conv_weight", layer, srcs[0], [&ck, srcs, Kc, total] {
    std::vector<float> o(Kc * total);
    uint64_t c0 = 0;
    for (const SrcTensor* t : srcs) {
      const std::vector<float> w = ck.read_f32(*t);  // [channels, 1, Kc]
      const uint64_t ch = t->shape[0];
      for (uint64_t c = 0; c < ch; ++c)
        for (uint64_t k = 0; k < Kc; ++k) o[k * total + c0 + c] = w[c * Kc + k];
      c0 += ch;
    }
    return o;
  });
}

FlaModel fla_model(const Checkpoint& ck, const json& cfg, const char* family, uint64_t default_layers) {
  const std::string fam = family;
  if (!cfg_null(cfg, "attn"))
    throw ConvertError("config.json: \"attn\" is set (a " + fam + "/attention hybrid); rill runs pure " + fam);
  if (cfg.contains("hidden_act") && cfg["hidden_act"] != "swish" && cfg["hidden_act"] != "silu")
    throw ConvertError("config.json: hidden_act " + cfg["hidden_act"].dump() + " is not supported (swish is)");
  FlaModel m{};
  m.d = cfg_uint(cfg, {"hidden_size"}, 2048, false);
  m.L = cfg_uint(cfg, {"num_hidden_layers"}, default_layers, false);
  m.eps = cfg.contains("norm_eps") ? cfg_number(cfg["norm_eps"], "norm_eps") : 1e-6;
  if (!(m.eps > 0 && m.eps < 1)) throw ConvertError("config.json: norm_eps must be in (0, 1)");
  const std::string emb_name = "model.embeddings.weight";
  const SrcTensor* emb = ck.find(emb_name);
  if (!emb || emb->shape.size() != 2 || emb->shape[1] != m.d)
    throw ConvertError("checkpoint: " + emb_name + " missing or not [vocab, hidden_size " + std::to_string(m.d) + "]");
  m.vocab = emb->shape[0];
  const SrcTensor* g0 = ck.find("model.layers.0.mlp.gate_proj.weight");
  if (!g0 || g0->shape.size() != 2) throw ConvertError("checkpoint: model.layers.0.mlp.gate_proj.weight missing or not 2-D");
  m.F = g0->shape[0];
  if (!cfg_null(cfg, "intermediate_size") && cfg_uint(cfg, {"intermediate_size"}, 0, false) != m.F)
    throw ConvertError("config.json: intermediate_size = " + std::to_string(cfg_uint(cfg, {"intermediate_size"}, 0, false)) +
                       " but the tensors say " + std::to_string(m.F));
  if (cfg.contains("vocab_size") && cfg_uint(cfg, {"vocab_size"}, 0, false) > m.vocab)
    throw ConvertError("config.json: vocab_size exceeds the " + std::to_string(m.vocab) + " embedding rows");
  const bool has_head = ck.find("lm_head.weight") != nullptr;
  const bool tie = cfg_bool(cfg, {"tie_word_embeddings"}, false);
  if (!has_head && !tie) throw ConvertError("checkpoint: tie_word_embeddings is false but lm_head.weight is missing");
  m.tied = !has_head || (tie && head_is_embedding(ck, emb_name));
  return m;
}

FlaHeads fla_heads(const json& cfg, uint64_t d, uint64_t default_heads, double default_ek, double default_ev) {
  if (!cfg_null(cfg, "feature_map"))
    throw ConvertError("config.json: feature_map " + cfg["feature_map"].dump() + " is not supported (null is)");
  if (!cfg_bool(cfg, {"use_output_gate"}, true)) throw ConvertError("config.json: use_output_gate=false is not supported");
  if (!cfg_bool(cfg, {"elementwise_affine"}, true))
    throw ConvertError("config.json: elementwise_affine=false is not supported");
  const uint64_t H = cfg_uint(cfg, {"num_heads"}, default_heads, false);
  if (!cfg_null(cfg, "num_kv_heads") && cfg_uint(cfg, {"num_kv_heads"}, H, false) != H)
    throw ConvertError("config.json: num_kv_heads different from num_heads (shared keys and values) is not supported");
  const double ek = cfg.contains("expand_k") ? cfg_number(cfg["expand_k"], "expand_k") : default_ek;
  const double ev = cfg.contains("expand_v") ? cfg_number(cfg["expand_v"], "expand_v") : default_ev;
  const double kd_f = std::round(static_cast<double>(d) * ek), vd_f = std::round(static_cast<double>(d) * ev);
  if (!(kd_f >= 1 && vd_f >= 1 && kd_f < 1e7 && vd_f < 1e7))
    throw ConvertError("config.json: hidden_size * expand_k or * expand_v out of range");
  const uint64_t kd = static_cast<uint64_t>(kd_f), vd = static_cast<uint64_t>(vd_f);
  if (H == 0 || kd % H != 0 || vd % H != 0)
    throw ConvertError("config.json: key dim " + std::to_string(kd) + " or value dim " + std::to_string(vd) +
                       " is not a multiple of num_heads " + std::to_string(H));
  return FlaHeads{H, kd / H, vd / H};
}

void fla_block_tensors(TensorSet& ts, uint64_t layer, std::initializer_list<const char*> norm_names) {
  const std::string p = "model.layers." + std::to_string(layer) + ".", a = p + "attn.";
  const int li = static_cast<int>(layer);
  ts.copy(p + "attn_norm.weight", "attn_norm", li);
  ts.copy(a + "g_proj.weight", "g_proj", li);
  std::string norm = std::string(a) + *norm_names.begin() + ".weight";
  for (const char* n : norm_names)
    if (ts.ck().find(a + n + ".weight")) {
      norm = a + n + ".weight";
      break;
    }
  ts.copy(norm, "o_norm", li);
  ts.copy(a + "o_proj.weight", "out_proj", li);
  ts.copy(p + "mlp_norm.weight", "mlp_norm", li);
  ts.copy(p + "mlp.gate_proj.weight", "gate", li);
  ts.copy(p + "mlp.up_proj.weight", "up", li);
  ts.copy(p + "mlp.down_proj.weight", "down", li);
}

}  // namespace convert
}  // namespace rill
