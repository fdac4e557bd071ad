// What every architecture's converter shares: config.json fields with aliases, the known-key check,
// the spec's expansion into a file's tensors and state, and TensorSet, which maps checkpoint tensors
// onto the spec's tensors and reports every problem at once (missing, mis-shaped, unexpected).
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "content.h"

namespace rill {
namespace convert {

using json = nlohmann::json;

// Parses config.json; accepts Python's non-standard Infinity / -Infinity / NaN (json.dump writes
// them, e.g. Mamba-2's time_step_limit) by reading them as the strings "Infinity", ...
json parse_config(const std::string& text);

// An unsigned integer field that may be spelled several ways; the spellings must agree.
uint64_t cfg_uint(const json& cfg, std::initializer_list<const char*> names, uint64_t def, bool required);
bool cfg_bool(const json& cfg, std::initializer_list<const char*> names, bool def);
// A number, or the strings "Infinity" / "-Infinity".
double cfg_number(const json& v, const char* what);

// Whether a config field is absent or null.
bool cfg_null(const json& cfg, const char* key);
// Whether the folder's config.json is valid JSON with this model_type.
bool model_type_is(const ArchInput& in, const char* model_type);

// Fails naming every key of `cfg` in neither set (prefix names nested objects), unless allowed.
void check_keys(const json& cfg, const std::set<std::string>& used, const std::set<std::string>& ignored,
                const std::string& prefix, std::vector<std::string>* unknown);
void fail_unknown(const std::vector<std::string>& unknown, bool allow);

std::string shape_str(const std::vector<uint64_t>& s);

// A size read from config.json or the tensors, for a spec's uint32_t hyper-parameter: refuses what
// does not fit (the spec's own ranges are checked after, by check_spec).
uint32_t size32(uint64_t v, const char* what);

// Vector input and output (sensor models): config.json's d_input and d_output (both or neither), and
// the optional per-channel input standardization input_mean / input_std (lists of d_input numbers).
struct VectorIo {
  uint64_t d_input = 0, d_output = 0;  // 0: a token model
  std::vector<float> mean, std;
};
VectorIo read_vector_io(const json& cfg);

// True if lm_head.weight holds exactly the embedding's values (a tied model's saved state_dict() has
// both): the head is then stored once, as the embedding.
bool head_is_embedding(const Checkpoint& ck, const std::string& emb_name);

// The ends of a file (arch/spec.h): tokens with a vocab of V (tied or not), or the vector io.
spec::Ends make_ends(const spec::EndsSpec& es, uint64_t d, uint64_t V, bool tied, const VectorIo& io);

// A tensor the spec says the file holds.
struct SpecTensor {
  std::string name;
  int layer;
  std::vector<uint64_t> shape;
  spec::DClass dclass;
};

// The spec's tensors and state tensors for these hyper-parameters, ends and layer kinds.
template <class S>
std::vector<SpecTensor> spec_tensors(const typename S::Hyper& h, const spec::Ends& e,
                                     const std::vector<fb::LayerKind>& kinds) {
  std::vector<SpecTensor> out;
  spec::for_each_tensor<S>(h, e, [&](uint32_t i) { return kinds.at(i); }, {}, [&](const spec::TensorEntry& t) {
    out.push_back(SpecTensor{t.name, t.layer, std::vector<uint64_t>(t.shape, t.shape + t.ndim), t.dclass});
    return true;
  });
  return out;
}
template <class S>
std::vector<FileState> spec_state(const typename S::Hyper& h, const std::vector<fb::LayerKind>& kinds) {
  std::vector<FileState> out;
  spec::for_each_state<S>(h, [&](uint32_t i) { return kinds.at(i); }, {}, [&](const spec::StateEntry& t) {
    const fb::DType dt = t.type == StateType::kF16 ? fb::DType::F16 : t.type == StateType::kI64 ? fb::DType::I64
                                                                                                : fb::DType::F32;
    out.push_back(FileState{t.name, t.layer, std::vector<uint64_t>(t.shape, t.shape + t.ndim), dt});
    return true;
  });
  return out;
}

// Checks the hyper-parameters as the runtime will (the spec's ranges and relations) and fills the
// file's architecture, hyper-parameters, layer kinds and state. ConvertError with the runtime's own
// message when they do not hold.
template <class S>
void begin_content(typename S::Hyper* h, std::vector<fb::LayerKind> kinds, const std::string& source_format,
                   FileContent* c) {
  Error e;
  if (spec::check_hyper<S>(h, &e) != Status::kOk) throw ConvertError(std::string("the model is outside what rill runs: ") + e.message);
  if (kinds.size() != h->n_layer) throw ConvertError("converter: layer kinds do not match n_layer");
  c->arch = S::kFileArch;
  c->params_type = S::kFileParams;
  const typename S::Hyper hv = *h;
  c->params = [hv](flatbuffers::FlatBufferBuilder& b) { return S::write(b, hv); };
  c->n_layer = h->n_layer;
  c->layer_kinds = std::move(kinds);
  c->state = spec_state<S>(*h, c->layer_kinds);
  c->source_format = source_format;
}

class TensorSet {
 public:
  // `expected`: the spec's tensors (spec_tensors); matrices are planned in `matrix_dtype` (F32 or F16).
  TensorSet(const Checkpoint& ck, FileContent* content, std::vector<SpecTensor> expected, fb::DType matrix_dtype)
      : ck_(ck), content_(content), expected_(std::move(expected)), matrix_dtype_(matrix_dtype) {}
  template <class S>
  static TensorSet of(const Checkpoint& ck, FileContent* content, const typename S::Hyper& h, const spec::Ends& e,
                      fb::DType matrix_dtype) {
    return TensorSet(ck, content, spec_tensors<S>(h, e, content->layer_kinds), matrix_dtype);
  }

  // Checks checkpoint tensor `name` exists with `shape`; records a problem and returns null otherwise.
  const SrcTensor* expect(const std::string& name, const std::vector<uint64_t>& shape);
  // Plans the spec's tensor `name` of `layer` (-1: the model's) from `src` (skipped if src is null), in
  // the spec's shape and storage: values() gives its values in that shape (default: a copy of src).
  void add(const std::string& name, int layer, const SrcTensor* src, std::function<std::vector<float>()> values = nullptr);
  // Plans a spec tensor that no checkpoint tensor holds: `values` computed from the config (its source
  // named by `source`, e.g. "config.json input_mean").
  void add_computed(const std::string& name, int layer, const std::string& source, std::vector<float> values);
  // expect + add: checkpoint tensor `src_name` holds the spec tensor's values, in its shape.
  void copy(const std::string& src_name, const std::string& name, int layer);
  // The spec tensor's shape (an internal error if the spec has no such tensor).
  const std::vector<uint64_t>& shape(const std::string& name, int layer) const;
  // The spec's conv_weight [K, channels] of `layer` from a checkpoint's depthwise conv [channels, 1, K].
  void conv_weight(const std::string& src_name, int layer);
  // The model-level tensors of a language model: embedding, norm_f (from backbone.norm_f.weight) and
  // the head (lm_head.weight) unless the spec's ends are tied; a tied model's lm_head.weight, which the
  // caller found equal to the embedding (head_is_embedding), is consumed.
  void lm_tensors(const std::string& emb_name, const std::string& norm_name = "backbone.norm_f.weight");
  // A vector model's ends: encoder.weight + encoder.bias, decoder.weight + decoder.bias, and input_mean
  // / input_std from the config when given.
  void vector_io(const VectorIo& io);
  // Adds unexpected checkpoint tensors to the problems and throws if there are any; `what` summarises
  // the config. Then every spec tensor must have been planned (an internal error otherwise).
  void finish(const std::string& what);
  const Checkpoint& ck() const { return ck_; }

 private:
  const SpecTensor& spec_tensor(const std::string& name, int layer) const;

  const Checkpoint& ck_;
  FileContent* content_;
  std::vector<SpecTensor> expected_;
  fb::DType matrix_dtype_;
  std::vector<std::string> problems_;
  std::set<std::string> consumed_;
  std::set<std::pair<int, std::string>> planned_;
};

// Plans the spec tensor `out` of `layer` as the values of `srcs` one after another (nothing when one is
// missing: expect() has recorded it).
void add_concat(TensorSet& ts, const std::string& out, int layer, std::vector<const SrcTensor*> srcs);
// flash-linear-attention's projections stacked by rows into the spec's matrix `out` of `layer`: each
// part is a checkpoint matrix [rows, cols] (q_proj, k_proj, ...), in order.
struct RowPart {
  std::string name;
  uint64_t rows;
};
void stack_rows(TensorSet& ts, const std::vector<RowPart>& parts, uint64_t cols, const std::string& out, int layer);
// fla's short convolutions [channels, 1, Kc] (q_conv1d, k_conv1d, v_conv1d) as one conv_weight
// [Kc, Σ channels] of `layer`; their biases are refused.
void stack_convs(TensorSet& ts, const std::vector<RowPart>& parts, uint64_t Kc, int layer);

// What flash-linear-attention's models (Gated DeltaNet, GLA, RetNet) share around their mixer: the
// config fields refused the same way (`attn` hybrids, a hidden_act other than swish), the embedding,
// the MLP's width, the head, and norm_eps (default 1e-6). `family` names the model in messages.
struct FlaModel {
  uint64_t d, L, vocab, F;
  double eps;
  bool tied;
};
FlaModel fla_model(const Checkpoint& ck, const json& cfg, const char* family, uint64_t default_layers);
// The GLA and RetNet key/value sizes: H heads of hidden_size * expand_k / H keys and * expand_v / H
// values (num_kv_heads other than num_heads refused); and their refusals of feature_map,
// use_output_gate = false and elementwise_affine = false.
struct FlaHeads {
  uint64_t H, K, V;
};
FlaHeads fla_heads(const json& cfg, uint64_t d, uint64_t default_heads, double default_ek, double default_ev);
// One fla block's tensors around its mixer: attn_norm, g_proj, the gated output norm (o_norm, from the
// first of `norm_names` the checkpoint holds), out_proj (o_proj), mlp_norm and the SwiGLU MLP.
void fla_block_tensors(TensorSet& ts, uint64_t layer, std::initializer_list<const char*> norm_names);

// [cols, rows] from a row-major [rows, cols].
std::vector<float> transpose(const std::vector<float>& a, uint64_t rows, uint64_t cols);
// Each of `rows` rows of x [rows, C] LayerNorm-ed (in double) with w, b: RWKV's ln0 folded into the
// embedding.
std::vector<float> layernorm_rows(std::vector<float> x, const std::vector<float>& w, const std::vector<float>& b,
                                  uint64_t rows, uint64_t C, double eps);

// Mamba-2's dt clamp after softplus, from time_step_limit ([min, max]; absent or null: (0, inf)).
void dt_limits(const json& cfg, float* lo, float* hi);

// A Mamba-2 mixer's tensors (arch/mamba2.h names) of layer li from the checkpoint's, prefix m (e.g.
// "backbone.layers.3.mixer."): in_proj, conv1d, dt_bias, A = -exp(A_log), D (per head, or per channel
// when d_per_channel) stored per channel, the gated norm and out_proj. Without the block's pre-norm.
void mamba2_mixer_tensors(TensorSet& ts, const std::string& m, int li, uint64_t H, uint64_t P, bool conv_bias,
                          bool d_per_channel);

}  // namespace convert
}  // namespace rill
