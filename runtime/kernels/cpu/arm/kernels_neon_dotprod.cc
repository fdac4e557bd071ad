// The "neon-dotprod" table's own kernels (ARMv8.2 dotprod: Cortex-A55/A76/A78, Jetson Orin's A78AE,
// Neoverse N1): the int8 and int4 products with int8 activations on SDOT (qdot.inl). This file is
// compiled with +dotprod; dispatch.cc picks the table only where getauxval reports ASIMDDP.
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/token_tiles.h"

namespace rill {
namespace kernels {
namespace {
#include "kernels/cpu/arm/qdot.inl"
}  // namespace

void prepare_act__neon_dotprod(const float* X, size_t ldx, size_t T, size_t cols, size_t group, unsigned char* work,
                               QAct* a, size_t t0, size_t t1) {
  prepare_act_dot(X, ldx, T, cols, group, work, a, t0, t1);
}
void matvec_q8__neon_dotprod(const int8_t* W, const float* scales, const QAct& a, float* y, size_t rows, size_t cols) {
  rows_q8_dot<1>(W, scales, a, 0, y, 0, rows, cols);
}
void matvec_q4__neon_dotprod(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* y,
                             size_t rows, size_t cols) {
  rows_q4_dot<1>(W, scales, group, a, 0, y, 0, rows, cols);
}
void matmul_q8__neon_dotprod(const int8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy, size_t rows,
                             size_t cols, size_t T) {
  matmul_q8_dot(W, scales, a, Y, ldy, rows, cols, T);
}
void matmul_q4__neon_dotprod(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y,
                             size_t ldy, size_t rows, size_t cols, size_t T) {
  matmul_q4_dot(W, scales, group, a, Y, ldy, rows, cols, T);
}
void matmul_q8x16__neon_dotprod(const uint8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy,
                                size_t rows, size_t cols, size_t T) {
  matmul_q8x16_dot(W, scales, a, Y, ldy, rows, cols, T);
}
void matmul_q4x16__neon_dotprod(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y,
                                size_t ldy, size_t rows, size_t cols, size_t T) {
  matmul_q4x16_dot(W, scales, group, a, Y, ldy, rows, cols, T);
}

}  // namespace kernels
}  // namespace rill
