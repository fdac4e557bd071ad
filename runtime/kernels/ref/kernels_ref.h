// Scalar reference versions of the dispatched kernels.
#pragma once
#include <cstddef>
#include <cstdint>

namespace rill {
namespace kernels {
void matvec_f32__ref(const float* W, const float* x, float* y, size_t rows, size_t cols);
void matvec_f16__ref(const uint16_t* W, const float* x, float* y, size_t rows, size_t cols);
void matvec_q8__ref(const int8_t* W, const float* scales, const float* x, float* y, size_t rows, size_t cols);
void matvec_q4__ref(const uint8_t* W, const uint16_t* scales, size_t group, const float* x, float* y, size_t rows,
                    size_t cols);
void matmul_q8__ref(const int8_t* W, const float* scales, const float* X, float* Y, size_t rows, size_t cols,
                    size_t T, size_t ldx, size_t ldy);
void matmul_q4__ref(const uint8_t* W, const uint16_t* scales, size_t group, const float* X, float* Y, size_t rows,
                    size_t cols, size_t T, size_t ldx, size_t ldy);
void matmul_f32__ref(const float* W, const float* X, float* Y, size_t rows, size_t cols, size_t T, size_t ldx,
                     size_t ldy);
void matmul_f16__ref(const uint16_t* W, const float* X, float* Y, size_t rows, size_t cols, size_t T, size_t ldx,
                     size_t ldy);
void mamba1_scan__ref(float* s, const float* A, const float* dt, const float* x, const float* B, const float* C,
                      const float* D, const float* z, float* y, size_t E, size_t N);
}  // namespace kernels
}  // namespace rill
