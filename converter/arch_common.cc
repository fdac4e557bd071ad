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

void TensorSet::add(const std::string& name, int layer, fb::DType dt, std::vector<uint64_t> shape,
                    const SrcTensor* src, std::function<std::vector<float>()> values) {
  if (!src) return;
  if (!values) {
    const Checkpoint* ck = &ck_;
    values = [ck, src] { return ck->read_f32(*src); };
  }
  PlanTensor t;
  t.name = name;
  t.layer = layer;
  t.dtype = dt;
  t.shape = std::move(shape);
  t.source = src->name;
  t.values = std::move(values);
  plan_->tensors.push_back(std::move(t));
}

void TensorSet::copy(const std::string& src_name, const std::string& name, int layer, fb::DType dt,
                     const std::vector<uint64_t>& shape) {
  add(name, layer, dt, shape, expect(src_name, shape));
}

void TensorSet::conv_weight(const std::string& src_name, int layer, uint64_t channels, uint64_t K) {
  const SrcTensor* cw = expect(src_name, {channels, 1, K});
  const Checkpoint* ck = &ck_;
  add("conv_weight", layer, fb::DType::F32, {K, channels}, cw, [ck, cw, channels, K] {
    const std::vector<float> w = ck->read_f32(*cw);  // [channels, 1, K]
    std::vector<float> o(K * channels);              // [K, channels]
    for (uint64_t c = 0; c < channels; ++c)
      for (uint64_t k = 0; k < K; ++k) o[k * channels + c] = w[c * K + k];
    return o;
  });
}

void TensorSet::lm_tensors(const std::string& emb_name, uint64_t V, uint64_t d, bool tied, fb::DType matrix_dtype) {
  copy(emb_name, "embedding", -1, matrix_dtype, {V, d});
  copy("backbone.norm_f.weight", "norm_f", -1, fb::DType::F32, {d});
  if (!tied) copy("lm_head.weight", "head", -1, matrix_dtype, {V, d});
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

void TensorSet::vector_io(const VectorIo& io, uint64_t d) {
  const fb::DType F = fb::DType::F32;
  copy("encoder.weight", "encoder", -1, F, {d, io.d_input});
  copy("encoder.bias", "encoder_bias", -1, F, {d});
  copy("decoder.weight", "decoder", -1, F, {io.d_output, d});
  copy("decoder.bias", "decoder_bias", -1, F, {io.d_output});
  if (!io.mean.empty()) {
    const std::vector<float> mean = io.mean, sd = io.std;
    for (int k = 0; k < 2; ++k) {
      PlanTensor t;
      t.name = k ? "input_std" : "input_mean";
      t.dtype = F;
      t.shape = {io.d_input};
      t.source = "config.json " + t.name;
      const std::vector<float> v = k ? sd : mean;
      t.values = [v] { return v; };
      plan_->tensors.push_back(std::move(t));
    }
  }
  plan_->d_input = static_cast<uint32_t>(io.d_input);
  plan_->d_output = static_cast<uint32_t>(io.d_output);
}

bool TensorSet::head_is_embedding(const std::string& emb_name) {
  const SrcTensor* h = ck_.find("lm_head.weight");
  const SrcTensor* e = ck_.find(emb_name);
  if (!h || !e || h->shape != e->shape || ck_.read_f32(*h) != ck_.read_f32(*e)) return false;
  consumed_.insert("lm_head.weight");
  return true;
}

void TensorSet::finish(const std::string& what) {
  for (const auto& kv : ck_.tensors())
    if (!consumed_.count(kv.first)) problems_.push_back("unexpected tensor " + kv.first + " " + shape_str(kv.second.shape));
  if (problems_.empty()) return;
  std::string msg = "checkpoint does not match config.json (" + std::to_string(problems_.size()) + " problem" +
                    (problems_.size() > 1 ? "s" : "") + "; " + what + "):";
  for (size_t i = 0; i < problems_.size() && i < 20; ++i) msg += "\n  " + problems_[i];
  if (problems_.size() > 20) msg += "\n  ... and " + std::to_string(problems_.size() - 20) + " more";
  throw ConvertError(msg);
}

}  // namespace convert
}  // namespace rill
