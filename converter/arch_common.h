// Helpers every architecture mapping uses: config.json fields with aliases, the known-key check, and
// TensorSet, which checks each expected checkpoint tensor and plans its output in one call, then
// reports every problem at once (missing, mis-shaped, unexpected).
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "plan.h"

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

// Fails naming every key of `cfg` in neither set (prefix names nested objects), unless allowed.
void check_keys(const json& cfg, const std::set<std::string>& used, const std::set<std::string>& ignored,
                const std::string& prefix, std::vector<std::string>* unknown);
void fail_unknown(const std::vector<std::string>& unknown, bool allow);

std::string shape_str(const std::vector<uint64_t>& s);

// Vector input and output (sensor models): config.json's d_input and d_output (both or neither), and
// the optional per-channel input standardization input_mean / input_std (lists of d_input numbers).
struct VectorIo {
  uint64_t d_input = 0, d_output = 0;  // 0: a token model
  std::vector<float> mean, std;
};
VectorIo read_vector_io(const json& cfg);

class TensorSet {
 public:
  TensorSet(const Checkpoint& ck, Plan* plan) : ck_(ck), plan_(plan) {}
  // Checks `name` exists with `shape`; records a problem and returns null otherwise.
  const SrcTensor* expect(const std::string& name, const std::vector<uint64_t>& shape);
  // Plans an output tensor from `src` (skipped if src is null): values() defaults to a plain copy.
  void add(const std::string& name, int layer, fb::DType dt, std::vector<uint64_t> shape, const SrcTensor* src,
           std::function<std::vector<float>()> values = nullptr);
  // expect + add with the same shape, as a copy.
  void copy(const std::string& src_name, const std::string& name, int layer, fb::DType dt,
            const std::vector<uint64_t>& shape);
  // A depthwise conv weight [channels, 1, K] stored tap-major [K, channels] (the runtime's layout).
  void conv_weight(const std::string& src_name, int layer, uint64_t channels, uint64_t K);
  // The model-level tensors of a language model: embedding [V, d], norm_f [d], head [V, d] unless tied.
  void lm_tensors(const std::string& emb_name, uint64_t V, uint64_t d, bool tied, fb::DType matrix_dtype);
  // A vector model's ends, f32: encoder.weight [d, d_input] + encoder.bias, decoder.weight
  // [d_output, d] + decoder.bias, and input_mean / input_std from the config when given.
  void vector_io(const VectorIo& io, uint64_t d);
  // True if lm_head.weight holds exactly the embedding's values (a tied model's saved state_dict() has
  // both); it is then consumed and the head is stored once, as the embedding.
  bool head_is_embedding(const std::string& emb_name);
  // Adds unexpected tensors to the problems and throws if there are any; `what` summarises the config.
  void finish(const std::string& what);
  const Checkpoint& ck() const { return ck_; }

 private:
  const Checkpoint& ck_;
  Plan* plan_;
  std::vector<std::string> problems_;
  std::set<std::string> consumed_;
};

}  // namespace convert
}  // namespace rill
