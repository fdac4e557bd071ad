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
void prepare_act__avx512vnni(const float* X, size_t ldx, size_t T, size_t cols, size_t group, unsigned char* work,
                             QAct* a) {
  q_avx512vnni::prepare_act(X, ldx, T, cols, group, work, a);
}
void matvec_q8__avx512vnni(const int8_t* W, const float* scales, const QAct& a, float* y, size_t rows, size_t cols) {
  q_avx512vnni::matvec_q8(W, scales, a, y, rows, cols);
}
void matvec_q4__avx512vnni(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* y,
                           size_t rows, size_t cols) {
  q_avx512vnni::matvec_q4(W, scales, group, a, y, rows, cols);
}
void matmul_q8__avx512vnni(const int8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy, size_t rows,
                           size_t cols, size_t T) {
  q_avx512vnni::matmul_q8(W, scales, a, Y, ldy, rows, cols, T);
}
void matmul_q4__avx512vnni(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y,
                           size_t ldy, size_t rows, size_t cols, size_t T) {
  q_avx512vnni::matmul_q4(W, scales, group, a, Y, ldy, rows, cols, T);
}
}  // namespace kernels
}  // namespace rill
