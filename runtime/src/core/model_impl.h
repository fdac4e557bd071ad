// Internal model representation: zero-copy views into the file, built once by Model::init.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdarg>

#include "rill/rill.hpp"

namespace rill {

enum class DType : uint8_t { kF32 = 0, kF16 = 1, kBF16 = 2, kI8 = 3, kI4 = 4 };

// A weight tensor used in place. Matrices are [rows = out, cols = in], row-major.
struct TensorView {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  // Quantized weights (kI8: one f32 scale per row; kI4: one f16 scale per `group` elements of a row,
  // 32-element blocks of 16 bytes, element j in the low nibble of byte j, element j+16 in the high
  // nibble, stored as q + 8).
  const void* scales = nullptr;
  uint32_t group = 0;
  uint32_t ndim = 0;
  uint64_t shape[4] = {0, 0, 0, 0};
  uint64_t rows() const { return ndim ? shape[0] : 0; }
  uint64_t cols() const { return ndim >= 2 ? shape[ndim - 1] : 1; }
  const float* f32() const { return static_cast<const float*>(data); }
  explicit operator bool() const { return data != nullptr; }
};

// Where one state tensor lives inside the session's state block.
struct StateSlot {
  const char* name;  // points into the file
  uint64_t offset, floats;
};

struct ModelImpl {
  Arch arch = Arch::kUnknown;
  ModelInfo info{};
  const unsigned char* file = nullptr;
  const void* fb_model = nullptr;  // const fb::Model*
  // Views every language-model architecture has.
  TensorView embed;   // [V, d]
  TensorView norm_f;  // [d] f32
  TensorView head;    // [V, d] (the embedding when tied)
  // The architecture's own hyper-parameters and per-layer views, a struct defined in
  // arch/<arch>.cc and placed in the caller's model memory by its bind().
  const void* arch_data = nullptr;
  StateSlot* state_slots = nullptr;
  uint32_t n_state_slots = 0;
  uint64_t state_bytes = 0;
  uint64_t scratch_bytes = 0;
  uint64_t fingerprint = 0;  // identifies compatible state blobs
  // World tokenizer: token i = vocab_bytes[vocab_offsets[i], vocab_offsets[i+1]); vocab_sorted lists
  // the non-empty tokens by their bytes. All verified at init.
  const uint8_t* vocab_bytes = nullptr;
  const uint32_t* vocab_offsets = nullptr;
  const uint32_t* vocab_sorted = nullptr;
  uint32_t n_sorted = 0, max_token_bytes = 0;
};

// Formats into err (if not null) and returns code. Used at init time only, never in step.
Status fail(Error* err, Status code, const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

inline size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

}  // namespace rill
