// The "neon-i8mm" table's own kernels (ARMv8.6 i8mm: Jetson Thor's Neoverse V3AE, Neoverse V1/V2/N2,
// Cortex-A710 and later): the 16-row products on USMMLA for pairs of tokens and on USDOT for one. The
// plain-row products and the activations are the dotprod table's (dispatch.cc). This file is compiled
// with +i8mm; dispatch.cc picks the table only where getauxval reports I8MM (and ASIMDDP).
//
// USMMLA multiplies a 2x8 uint8 matrix by an 8x2 int8 one into a 2x2 int32 block. Two loads of the
// 16-row layout (4 rows x columns 4k..4k+3, then 4k+4..4k+7) zipped by 32-bit lanes are 2 rows x 8
// columns; the activations of two tokens side by side are the 8x2 operand. So one instruction does 32
// products where SDOT does 16. The weights go in as stored (int8 as w + 128, int4 nibbles as q + 8),
// and the offset comes off once per block and token as offset * sum(q) (QAct::sum), so no weight is
// converted. The int32 block sums are exact integers whichever instruction made them, and each block
// ends with the same float step (add_block), so a pair of tokens gives the bits of two single tokens.
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/token_tiles.h"

namespace rill {
namespace kernels {
namespace {
#include "kernels/cpu/arm/qdot.inl"

inline uint8x16_t rows01(uint32x4_t a, uint32x4_t b) { return vreinterpretq_u8_u32(vzip1q_u32(a, b)); }
inline uint8x16_t rows23(uint32x4_t a, uint32x4_t b) { return vreinterpretq_u8_u32(vzip2q_u32(a, b)); }

// Token 0's and token 1's 4 rows of a block from the two 2x2 blocks, less offset * sum(q) of each token.
inline int32x4_t token0(const int32x4_t* m, int32_t off) { return vsubq_s32(vuzp1q_s32(m[0], m[1]), vdupq_n_s32(off)); }
inline int32x4_t token1(const int32x4_t* m, int32_t off) { return vsubq_s32(vuzp2q_s32(m[0], m[1]), vdupq_n_s32(off)); }

// Tokens t0 and t0 + 1 over 16 rows, int8: per 32-column block 4 steps of 8 columns, two SMMLAs each
// per 4 rows. m[h][0] holds rows 4h, 4h+1 (lanes r0t0 r0t1 r1t0 r1t1), m[h][1] rows 4h+2, 4h+3; UZP
// gives each token's 4 rows.
inline void x16_q8_mmla(const uint8_t* W, const float* S, size_t cols, const QAct& a, size_t t0, float* Y,
                        size_t ldy) {
  const size_t lds = a.ldq / 32;
  const int8_t* q0 = a.q + t0 * a.ldq;
  const int8_t* q1 = q0 + a.ldq;
  float32x4_t acc[2][4];
  for (int h = 0; h < 4; ++h) acc[0][h] = acc[1][h] = vdupq_n_f32(0.f);
  for (size_t b = 0; b < cols / 32; ++b) {
    int32x4_t m[4][2];
    for (int h = 0; h < 4; ++h) m[h][0] = m[h][1] = vdupq_n_s32(0);
    for (size_t k = 0; k < 8; k += 2) {
      const int8x16_t x = vcombine_s8(vld1_s8(q0 + b * 32 + 4 * k), vld1_s8(q1 + b * 32 + 4 * k));
      const uint8_t* wk = W + (b * 8 + k) * 64;
      const uint8x16x4_t wa = vld1q_u8_x4(wk), wb = vld1q_u8_x4(wk + 64);
      for (int h = 0; h < 4; ++h) {
        const uint32x4_t ra = vreinterpretq_u32_u8(wa.val[h]), rb = vreinterpretq_u32_u8(wb.val[h]);
        m[h][0] = vusmmlaq_s32(m[h][0], rows01(ra, rb), x);
        m[h][1] = vusmmlaq_s32(m[h][1], rows23(ra, rb), x);
      }
    }
    const float32x4_t s0 = vdupq_n_f32(a.s[t0 * lds + b]), s1 = vdupq_n_f32(a.s[(t0 + 1) * lds + b]);
    const int32_t o0 = 128 * a.sum[t0 * lds + b], o1 = 128 * a.sum[(t0 + 1) * lds + b];
    for (int h = 0; h < 4; ++h) {
      acc[0][h] = add_block(acc[0][h], token0(m[h], o0), s0);
      acc[1][h] = add_block(acc[1][h], token1(m[h], o1), s1);
    }
  }
  for (int t = 0; t < 2; ++t)
    for (int h = 0; h < 4; ++h) vst1q_f32(Y + t * ldy + 4 * h, vmulq_f32(acc[t][h], vld1q_f32(S + 4 * h)));
}

// The same for int4: per step of 8 columns, the low nibbles (columns 8k..8k+3) zipped with the high ones
// (8k+4..8k+7) are 2 rows x 8 columns; the nibbles go in unsigned (q + 8).
inline void x16_q4_mmla(const uint8_t* W, const uint16_t* S, size_t cols, size_t group, const QAct& a, size_t t0,
                        float* Y, size_t ldy) {
  const size_t lds = a.ldq / 32, bpg = group / 32;
  const int8_t* q0 = a.q + t0 * a.ldq;
  const int8_t* q1 = q0 + a.ldq;
  float32x4_t acc[2][4];
  for (int h = 0; h < 4; ++h) acc[0][h] = acc[1][h] = vdupq_n_f32(0.f);
  for (size_t b = 0; b < cols / 32; ++b) {
    int32x4_t m[4][2];
    for (int h = 0; h < 4; ++h) m[h][0] = m[h][1] = vdupq_n_s32(0);
    for (size_t k = 0; k < 4; ++k) {
      const int8x16_t x = vcombine_s8(vld1_s8(q0 + b * 32 + 8 * k), vld1_s8(q1 + b * 32 + 8 * k));
      const uint8x16x4_t w = vld1q_u8_x4(W + (b * 4 + k) * 64);
      for (int h = 0; h < 4; ++h) {
        const uint32x4_t l = vreinterpretq_u32_u8(vandq_u8(w.val[h], vdupq_n_u8(0x0F)));
        const uint32x4_t u = vreinterpretq_u32_u8(vshrq_n_u8(w.val[h], 4));
        m[h][0] = vusmmlaq_s32(m[h][0], rows01(l, u), x);
        m[h][1] = vusmmlaq_s32(m[h][1], rows23(l, u), x);
      }
      step_end();
    }
    const float sx0 = a.s[t0 * lds + b], sx1 = a.s[(t0 + 1) * lds + b];
    const int32_t o0 = 8 * a.sum[t0 * lds + b], o1 = 8 * a.sum[(t0 + 1) * lds + b];
    for (int h = 0; h < 4; ++h) {
      const float32x4_t sw = x16_q4_scales(S, b / bpg, h);
      acc[0][h] = add_block(acc[0][h], token0(m[h], o0), vmulq_n_f32(sw, sx0));
      acc[1][h] = add_block(acc[1][h], token1(m[h], o1), vmulq_n_f32(sw, sx1));
    }
  }
  for (int t = 0; t < 2; ++t)
    for (int h = 0; h < 4; ++h) vst1q_f32(Y + t * ldy + 4 * h, acc[t][h]);
}
// One token over 16 rows (decode, or the odd token of a prefill): the dotprod kernels' loop with
// USDOT (i8mm's unsigned x signed dot product) on the weights as stored, the offset taken off per block
// as in the pairs above, so no weight is converted and the block sums are the same integers.
template <int L>
inline int32x4_t usdot_lane(int32x4_t d, uint8x16_t w, int8x16_t x) {
  return vusdotq_laneq_s32(d, w, x, L);
}

inline void x16_q8_usdot(const uint8_t* W, const float* S, size_t cols, const QAct& a, size_t t0, float* Y) {
  const size_t lds = a.ldq / 32;
  const int8_t* q = a.q + t0 * a.ldq;
  float32x4_t acc[4];
  for (int h = 0; h < 4; ++h) acc[h] = vdupq_n_f32(0.f);
  for (size_t b = 0; b < cols / 32; ++b) {
    int32x4_t d[4];
    for (int h = 0; h < 4; ++h) d[h] = vdupq_n_s32(0);
    for (size_t k = 0; k < 8; k += 4) {
      const int8x16_t x = vld1q_s8(q + b * 32 + 4 * k);
      const uint8_t* wk = W + (b * 8 + k) * 64;
      const uint8x16x4_t w0 = vld1q_u8_x4(wk), w1 = vld1q_u8_x4(wk + 64), w2 = vld1q_u8_x4(wk + 128),
                         w3 = vld1q_u8_x4(wk + 192);
      for (int h = 0; h < 4; ++h) {
        d[h] = usdot_lane<0>(d[h], w0.val[h], x);
        d[h] = usdot_lane<1>(d[h], w1.val[h], x);
        d[h] = usdot_lane<2>(d[h], w2.val[h], x);
        d[h] = usdot_lane<3>(d[h], w3.val[h], x);
      }
    }
    const float32x4_t sx = vdupq_n_f32(a.s[t0 * lds + b]);
    const int32x4_t off = vdupq_n_s32(128 * a.sum[t0 * lds + b]);
    for (int h = 0; h < 4; ++h) acc[h] = add_block(acc[h], vsubq_s32(d[h], off), sx);
  }
  for (int h = 0; h < 4; ++h) vst1q_f32(Y + 4 * h, vmulq_f32(acc[h], vld1q_f32(S + 4 * h)));
}

inline void x16_q4_usdot(const uint8_t* W, const uint16_t* S, size_t cols, size_t group, const QAct& a, size_t t0,
                         float* Y) {
  const size_t lds = a.ldq / 32, bpg = group / 32;
  const int8_t* q = a.q + t0 * a.ldq;
  const uint8x16_t mask = vdupq_n_u8(0x0F);
  float32x4_t acc[4];
  for (int h = 0; h < 4; ++h) acc[h] = vdupq_n_f32(0.f);
  for (size_t b = 0; b < cols / 32; ++b) {
    int32x4_t d[4];
    for (int h = 0; h < 4; ++h) d[h] = vdupq_n_s32(0);
    for (size_t k = 0; k < 4; k += 2) {
      const int8x16_t x = vld1q_s8(q + b * 32 + 8 * k);
      const uint8_t* wk = W + (b * 4 + k) * 64;
      const uint8x16x4_t w0 = vld1q_u8_x4(wk), w1 = vld1q_u8_x4(wk + 64);
      for (int h = 0; h < 4; ++h) {
        d[h] = usdot_lane<0>(d[h], vandq_u8(w0.val[h], mask), x);
        d[h] = usdot_lane<1>(d[h], vshrq_n_u8(w0.val[h], 4), x);
        d[h] = usdot_lane<2>(d[h], vandq_u8(w1.val[h], mask), x);
        d[h] = usdot_lane<3>(d[h], vshrq_n_u8(w1.val[h], 4), x);
      }
    }
    const float sx = a.s[t0 * lds + b];
    const int32x4_t off = vdupq_n_s32(8 * a.sum[t0 * lds + b]);
    for (int h = 0; h < 4; ++h)
      acc[h] = add_block(acc[h], vsubq_s32(d[h], off), vmulq_n_f32(x16_q4_scales(S, b / bpg, h), sx));
  }
  for (int h = 0; h < 4; ++h) vst1q_f32(Y + 4 * h, acc[h]);
}
}  // namespace

// Pairs of tokens on USMMLA, a single or odd last token on USDOT.
void matmul_q8x16__neon_i8mm(const uint8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy,
                             size_t rows, size_t cols, size_t T) {
  for (size_t r = 0; r < rows; r += 16) {
    size_t t = 0;
    for (; t + 2 <= T; t += 2) x16_q8_mmla(W + r * cols, scales + r, cols, a, t, Y + t * ldy + r, ldy);
    if (t < T) x16_q8_usdot(W + r * cols, scales + r, cols, a, t, Y + t * ldy + r);
  }
}
void matmul_q4x16__neon_i8mm(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y,
                             size_t ldy, size_t rows, size_t cols, size_t T) {
  for (size_t r = 0; r < rows; r += 16) {
    const uint8_t* w = W + r * (cols / 2);
    const uint16_t* s = scales + r * (cols / group);
    size_t t = 0;
    for (; t + 2 <= T; t += 2) x16_q4_mmla(w, s, cols, group, a, t, Y + t * ldy + r, ldy);
    if (t < T) x16_q4_usdot(w, s, cols, group, a, t, Y + t * ldy + r);
  }
}

}  // namespace kernels
}  // namespace rill
