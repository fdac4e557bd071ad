// Zero-copy access to a verified rill file: tensor lookup and shape-checked binding.
#pragma once

#include <initializer_list>

#include "core/model_impl.h"
#include "rill_generated.h"

namespace rill {

inline constexpr uint16_t kFormatMajor = 1;
inline constexpr uint16_t kFormatMinor = 7;

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

// Binds `t` to `out` after checking its dtype is one of dtypes[0, n_dtypes) and its shape equals
// shape[0, ndim). `what` names the tensor in messages ("layers.3.in_proj"). A null `t` fails unless
// `optional`.
Status bind_tensor(const FileView& f, const fb::Tensor* t, const char* what, const uint64_t* shape, size_t ndim,
                   const DType* dtypes, size_t n_dtypes, TensorView* out, Error* err, bool optional = false);
inline Status bind_tensor(const FileView& f, const fb::Tensor* t, const char* what,
                          std::initializer_list<uint64_t> shape, std::initializer_list<DType> dtypes,
                          TensorView* out, Error* err, bool optional = false) {
  return bind_tensor(f, t, what, shape.begin(), shape.size(), dtypes.begin(), dtypes.size(), out, err, optional);
}

// FlatBuffers 2.0.8 verifies vectors for 4-byte alignment only; a hostile file can place a [uint64]
// vector at an address that is not 8-aligned (the builder never does). Refuse those before reading.
inline bool u64_vector_ok(const flatbuffers::Vector<uint64_t>* v) {
  return v && reinterpret_cast<uintptr_t>(v->data()) % alignof(uint64_t) == 0;
}

const char* dtype_name(DType d);
size_t dtype_bits(DType d);

}  // namespace rill
