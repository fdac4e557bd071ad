// Zero-copy access to a verified rill file: tensor lookup and shape-checked binding.
#pragma once

#include <initializer_list>

#include "core/model_impl.h"
#include "rill_generated.h"

namespace rill {

inline constexpr uint16_t kFormatMajor = 1;
inline constexpr uint16_t kFormatMinor = 4;

struct FileView {
  const unsigned char* base;  // file start
  const fb::Model* model;
  uint64_t data_offset, data_size;
  // Where the backend keeps the weight region (the CPU: base + data_offset); views point there.
  const unsigned char* weights;
  // The host copy of a weight a view points at (the file's bytes), for checks at bind time: a device
  // backend's weight memory cannot be read from the host.
  const float* host_f32(const TensorView& v) const {
    return reinterpret_cast<const float*>(base + data_offset + (static_cast<const unsigned char*>(v.data) - weights));
  }
};

// Finds `name` in a tensor vector (null if absent).
const fb::Tensor* find_tensor(const flatbuffers::Vector<flatbuffers::Offset<fb::Tensor>>* v, const char* name);

// Binds `t` to `out` after checking dtype is one of `dtypes` and the shape equals `shape`.
// `what` names the tensor in messages ("layers.3.in_proj"). A null `t` fails unless `optional`.
Status bind_tensor(const FileView& f, const fb::Tensor* t, const char* what,
                   std::initializer_list<uint64_t> shape, std::initializer_list<DType> dtypes,
                   TensorView* out, Error* err, bool optional = false);

// Checks the file's state layout contains exactly the tensors `expected` (name, shape, element type),
// aligned, inside state_bytes and not overlapping; fills impl->state_slots (n = expected count).
struct ExpectedState {
  char name[48];
  uint64_t shape[3];
  uint32_t ndim;
  StateType type = StateType::kF32;
};
using ExpectStateFn = void (*)(const ModelImpl& m, uint32_t i, ExpectedState* out);
Status bind_state(const FileView& f, ExpectStateFn expect, uint32_t n, ModelImpl* impl, StateSlot* slots,
                  Error* err);

const char* dtype_name(DType d);
size_t dtype_bits(DType d);

}  // namespace rill
