// Weight tensors as the op tables see them: dtype, shape and where the bytes are in backend memory.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rill {

enum class DType : uint8_t { kF32 = 0, kF16 = 1, kBF16 = 2, kI8 = 3, kI4 = 4 };
inline constexpr size_t kDTypeCount = 5;

// A weight tensor used in place. Matrices are [rows = out, cols = in], row-major. `data` and `scales`
// point into the backend's weight memory (the CPU backend: the mapped file itself), so only that
// backend's ops may read them.
struct TensorView {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  // Quantized weights (kI8: one f32 scale per row; kI4: one f16 scale per `group` elements of a row,
  // 32-element blocks of 16 bytes, element j in the low nibble of byte j, element j+16 in the high
  // nibble, stored as q + 8).
  const void* scales = nullptr;
  uint32_t group = 0;
  // kI4 / kI8: stored in the 16-row interleaved layout (QuantScheme GroupedRows16 / PerRowRows16;
  // kernels.h, q4x16_value / q8x16_value) rather than row by row.
  bool rows16 = false;
  uint32_t ndim = 0;
  uint64_t shape[4] = {0, 0, 0, 0};
  uint64_t rows() const { return ndim ? shape[0] : 0; }
  uint64_t cols() const { return ndim >= 2 ? shape[ndim - 1] : 1; }
  const float* f32() const { return static_cast<const float*>(data); }
  explicit operator bool() const { return data != nullptr; }
  // Rows [first, first + count) of a float matrix (f32, f16 or bf16) as a view of their own: a block of
  // a block-diagonal matrix. It only computes where the rows lie; quantized layouts (rows interleaved,
  // scales apart) have no such view.
  TensorView row_block(uint64_t first, uint64_t count) const {
    TensorView v = *this;
    const uint64_t row_bytes = cols() * (dtype == DType::kF32 ? 4 : 2);
    v.data = static_cast<const unsigned char*>(data) + first * row_bytes;
    v.shape[0] = count;
    return v;
  }
};

}  // namespace rill
