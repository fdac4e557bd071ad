// NEON kernels for aarch64 (Jetson Orin/Thor CPUs, Arm SBCs, phones). Baseline ARMv8 NEON only, so
// no feature check is needed: f16 weights through vcvt_f32_f16; int8/int4 weights widened to f32 and
// multiplied with f32 activations (no activation rounding, so closer to the reference than the x86
// int8-activation kernels). Batched (matmul) forms loop the matvec, so they match it bit for bit.
// Not yet: dot-product (SDOT, ARMv8.2) and i8mm paths with int8 activations, a NEON scan.
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/isa_kernels.h"

namespace rill {
namespace kernels {

namespace {
inline float dot_f32(const float* w, const float* x, size_t n) {
  float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0);
  size_t c = 0;
  for (; c + 8 <= n; c += 8) {
    a0 = vfmaq_f32(a0, vld1q_f32(w + c), vld1q_f32(x + c));
    a1 = vfmaq_f32(a1, vld1q_f32(w + c + 4), vld1q_f32(x + c + 4));
  }
  float s = vaddvq_f32(vaddq_f32(a0, a1));
  for (; c < n; ++c) s = __builtin_fmaf(w[c], x[c], s);
  return s;
}

inline float dot_f16(const uint16_t* w, const float* x, size_t n) {
  float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0);
  size_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(w + c));
    a0 = vfmaq_f32(a0, vcvt_f32_f16(vget_low_f16(h)), vld1q_f32(x + c));
    a1 = vfmaq_f32(a1, vcvt_high_f32_f16(h), vld1q_f32(x + c + 4));
  }
  float s = vaddvq_f32(vaddq_f32(a0, a1));
  for (; c < n; ++c) s = __builtin_fmaf(vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(w[c]))), 0), x[c], s);
  return s;
}

// 16 int8 values times 16 floats, accumulated into acc.
inline float32x4_t fma_i8x16(float32x4_t acc, int8x16_t q, const float* x) {
  const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_s8(vget_high_s8(q));
  acc = vfmaq_f32(acc, vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), vld1q_f32(x));
  acc = vfmaq_f32(acc, vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo))), vld1q_f32(x + 4));
  acc = vfmaq_f32(acc, vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), vld1q_f32(x + 8));
  return vfmaq_f32(acc, vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi))), vld1q_f32(x + 12));
}
}  // namespace

void matvec_f32__neon(const float* W, const float* x, float* y, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) y[r] = dot_f32(W + r * cols, x, cols);
}

void matvec_f16__neon(const uint16_t* W, const float* x, float* y, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) y[r] = dot_f16(W + r * cols, x, cols);
}

// cols is a multiple of 32 (the converter quantizes only such matrices). Float activations (a.x).
void matvec_q8__neon(const int8_t* W, const float* scales, const QAct& a, float* y, size_t rows, size_t cols) {
  const float* x = a.x;
  for (size_t r = 0; r < rows; ++r) {
    const int8_t* w = W + r * cols;
    float32x4_t acc = vdupq_n_f32(0);
    for (size_t c = 0; c < cols; c += 16) acc = fma_i8x16(acc, vld1q_s8(w + c), x + c);
    y[r] = vaddvq_f32(acc) * scales[r];
  }
}

void matvec_q4__neon(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* y, size_t rows,
                     size_t cols) {
  const float* x = a.x;
  const size_t groups = cols / group;
  const uint8x16_t mask = vdupq_n_u8(0x0F);
  const int8x16_t eight = vdupq_n_s8(8);
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* w = W + r * (cols / 2);
    float s = 0.f;
    for (size_t g = 0; g < groups; ++g) {
      float32x4_t acc = vdupq_n_f32(0);
      for (size_t b = g * group / 32; b < (g + 1) * group / 32; ++b) {  // 32 elements in 16 bytes
        const uint8x16_t packed = vld1q_u8(w + b * 16);
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(packed, mask)), eight);  // elements 0..15
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(packed, 4)), eight);   // elements 16..31
        acc = fma_i8x16(acc, lo, x + b * 32);
        acc = fma_i8x16(acc, hi, x + b * 32 + 16);
      }
      const float sc = vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(scales[r * groups + g]))), 0);
      s = __builtin_fmaf(vaddvq_f32(acc), sc, s);
    }
    y[r] = s;
  }
}

void matmul_f32__neon(const float* W, const float* X, size_t ldx, float* Y, size_t ldy, size_t rows, size_t cols,
                      size_t T) {
  for (size_t t = 0; t < T; ++t) matvec_f32__neon(W, X + t * ldx, Y + t * ldy, rows, cols);
}
void matmul_f16__neon(const uint16_t* W, const float* X, size_t ldx, float* Y, size_t ldy, size_t rows, size_t cols,
                      size_t T) {
  for (size_t t = 0; t < T; ++t) matvec_f16__neon(W, X + t * ldx, Y + t * ldy, rows, cols);
}
void matmul_q8__neon(const int8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy, size_t rows,
                     size_t cols, size_t T) {
  for (size_t t = 0; t < T; ++t) matvec_q8__neon(W, scales, float_act(a.x + t * a.ldx, a.ldx), Y + t * ldy, rows, cols);
}
void matmul_q4__neon(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y, size_t ldy,
                     size_t rows, size_t cols, size_t T) {
  for (size_t t = 0; t < T; ++t)
    matvec_q4__neon(W, scales, group, float_act(a.x + t * a.ldx, a.ldx), Y + t * ldy, rows, cols);
}

}  // namespace kernels
}  // namespace rill
