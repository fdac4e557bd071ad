// AVX-512 VNNI kernels (Zen 4, Ice Lake and later): the quantized matvecs use vpdpbusd on 256-bit
// vectors (AVX512VL), one instruction per 32 products. Compiled with -mavx512f -mavx512vl -mavx512bw
// -mavx512vnni on this file only; called only when the CPU reports those features.
#include <immintrin.h>

#include "kernels/cpu/isa_kernels.h"

#define QDOT _mm256_dpbusd_epi32
#define QSUFFIX q_avx512vnni
#include "kernels/cpu/x86/qmatvec.inl"
#undef QDOT
#undef QSUFFIX

namespace rill {
namespace kernels {
void matvec_q8__avx512vnni(const int8_t* W, const float* scales, const float* x, float* y, size_t rows, size_t cols) {
  q_avx512vnni::matvec_q8(W, scales, x, y, rows, cols);
}
void matvec_q4__avx512vnni(const uint8_t* W, const uint16_t* scales, size_t group, const float* x, float* y,
                           size_t rows, size_t cols) {
  q_avx512vnni::matvec_q4(W, scales, group, x, y, rows, cols);
}
void matmul_q8__avx512vnni(const int8_t* W, const float* scales, const float* X, float* Y, size_t rows, size_t cols,
                      size_t T, size_t ldx, size_t ldy) {
  q_avx512vnni::matmul_q8(W, scales, X, Y, rows, cols, T, ldx, ldy);
}
void matmul_q4__avx512vnni(const uint8_t* W, const uint16_t* scales, size_t group, const float* X, float* Y,
                           size_t rows, size_t cols, size_t T, size_t ldx, size_t ldy) {
  q_avx512vnni::matmul_q4(W, scales, group, X, Y, rows, cols, T, ldx, ldy);
}
}  // namespace kernels
}  // namespace rill
