// NEON kernels for aarch64 (Jetson Orin/Thor CPUs, Arm SBCs, phones), baseline ARMv8.0 NEON, which
// every aarch64 CPU has: the whole "neon" table, and the float kernels, scans and row ops that the
// dotprod and i8mm tables (kernels_neon_dotprod.cc, kernels_neon_i8mm.cc) share with it.
//   Products: f16 weights through vcvt_f32_f16; int8/int4 weights widened to f32 and multiplied with f32
//   activations (no activation rounding, so closer to the reference than the int8-activation kernels).
//   Batched (matmul) forms read each weight row once per tile of 4 tokens and match the matvec bit for
//   bit (see rows_float, rows_q8, rows_q4).
//   Scans and row ops: scans.inl and rowops.inl over 4-lane vectors (V4 below), with a vector exp.
#include <arm_neon.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/token_tiles.h"
#include "kernels/ref/kernels_ref.h"

namespace rill {
namespace kernels {

namespace {
// Every product runs through one row kernel per dtype over a tile of NT tokens (1..4): each weight
// row is loaded and widened once for the tile, and each token's accumulators see exactly the
// sequence of operations they would see alone. So matmul reads W once per 4 tokens and still equals
// matvec (NT = 1) bit for bit, whatever the tiling.
constexpr size_t kTile = 4;

inline float h2f(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }

// Float weights: Load gives 8 weights of row r at column c as two f32 vectors, and one as a scalar.
struct LoadF32 {
  const float* W;
  size_t cols;
  void operator()(size_t r, size_t c, float32x4_t* w0, float32x4_t* w1) const {
    *w0 = vld1q_f32(W + r * cols + c);
    *w1 = vld1q_f32(W + r * cols + c + 4);
  }
  float scalar(size_t r, size_t c) const { return W[r * cols + c]; }
};

struct LoadF16 {
  const uint16_t* W;
  size_t cols;
  void operator()(size_t r, size_t c, float32x4_t* w0, float32x4_t* w1) const {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(W + r * cols + c));
    *w0 = vcvt_f32_f16(vget_low_f16(h));
    *w1 = vcvt_high_f32_f16(h);
  }
  float scalar(size_t r, size_t c) const { return h2f(W[r * cols + c]); }
};

template <size_t NT, typename Load>
void rows_float(Load load, const float* X, size_t ldx, float* Y, size_t ldy, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) {
    float32x4_t a0[NT], a1[NT];
    for (size_t t = 0; t < NT; ++t) a0[t] = a1[t] = vdupq_n_f32(0);
    size_t c = 0;
    for (; c + 8 <= cols; c += 8) {
      float32x4_t w0, w1;
      load(r, c, &w0, &w1);
      for (size_t t = 0; t < NT; ++t) {
        a0[t] = vfmaq_f32(a0[t], w0, vld1q_f32(X + t * ldx + c));
        a1[t] = vfmaq_f32(a1[t], w1, vld1q_f32(X + t * ldx + c + 4));
      }
    }
    for (size_t t = 0; t < NT; ++t) {
      float s = vaddvq_f32(vaddq_f32(a0[t], a1[t]));
      for (size_t k = c; k < cols; ++k) s = __builtin_fmaf(load.scalar(r, k), X[t * ldx + k], s);
      Y[t * ldy + r] = s;
    }
  }
}

// 16 int8 weights widened to four f32 vectors, then accumulated into each token's acc.
template <size_t NT>
inline void fma_i8x16(float32x4_t* acc, int8x16_t q, const float* X, size_t ldx) {
  const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_s8(vget_high_s8(q));
  const float32x4_t w0 = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), w1 = vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo)));
  const float32x4_t w2 = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), w3 = vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi)));
  for (size_t t = 0; t < NT; ++t) {
    const float* x = X + t * ldx;
    float32x4_t a = vfmaq_f32(acc[t], w0, vld1q_f32(x));
    a = vfmaq_f32(a, w1, vld1q_f32(x + 4));
    a = vfmaq_f32(a, w2, vld1q_f32(x + 8));
    acc[t] = vfmaq_f32(a, w3, vld1q_f32(x + 12));
  }
}

// cols is a multiple of 32 (the converter quantizes only such matrices). Float activations.
template <size_t NT>
void rows_q8(const int8_t* W, const float* scales, const float* X, size_t ldx, float* Y, size_t ldy, size_t rows,
             size_t cols) {
  for (size_t r = 0; r < rows; ++r) {
    const int8_t* w = W + r * cols;
    float32x4_t acc[NT];
    for (size_t t = 0; t < NT; ++t) acc[t] = vdupq_n_f32(0);
    for (size_t c = 0; c < cols; c += 16) fma_i8x16<NT>(acc, vld1q_s8(w + c), X + c, ldx);
    for (size_t t = 0; t < NT; ++t) Y[t * ldy + r] = vaddvq_f32(acc[t]) * scales[r];
  }
}

template <size_t NT>
void rows_q4(const uint8_t* W, const uint16_t* scales, size_t group, const float* X, size_t ldx, float* Y, size_t ldy,
             size_t rows, size_t cols) {
  const size_t groups = cols / group;
  const uint8x16_t mask = vdupq_n_u8(0x0F);
  const int8x16_t eight = vdupq_n_s8(8);
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* w = W + r * (cols / 2);
    float s[NT];
    for (size_t t = 0; t < NT; ++t) s[t] = 0.f;
    for (size_t g = 0; g < groups; ++g) {
      float32x4_t acc[NT];
      for (size_t t = 0; t < NT; ++t) acc[t] = vdupq_n_f32(0);
      for (size_t b = g * group / 32; b < (g + 1) * group / 32; ++b) {  // 32 elements in 16 bytes
        const uint8x16_t packed = vld1q_u8(w + b * 16);
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(packed, mask)), eight);  // elements 0..15
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(packed, 4)), eight);   // elements 16..31
        fma_i8x16<NT>(acc, lo, X + b * 32, ldx);
        fma_i8x16<NT>(acc, hi, X + b * 32 + 16, ldx);
      }
      const float sc = h2f(scales[r * groups + g]);
      for (size_t t = 0; t < NT; ++t) s[t] = __builtin_fmaf(vaddvq_f32(acc[t]), sc, s[t]);
    }
    for (size_t t = 0; t < NT; ++t) Y[t * ldy + r] = s[t];
  }
}

}  // namespace

void matvec_f32__neon(const float* W, const float* x, float* y, size_t rows, size_t cols) {
  rows_float<1>(LoadF32{W, cols}, x, 0, y, 0, rows, cols);
}
void matvec_f16__neon(const uint16_t* W, const float* x, float* y, size_t rows, size_t cols) {
  rows_float<1>(LoadF16{W, cols}, x, 0, y, 0, rows, cols);
}
void matvec_q8__neon(const int8_t* W, const float* scales, const QAct& a, float* y, size_t rows, size_t cols) {
  rows_q8<1>(W, scales, a.x, 0, y, 0, rows, cols);
}
void matvec_q4__neon(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* y, size_t rows,
                     size_t cols) {
  rows_q4<1>(W, scales, group, a.x, 0, y, 0, rows, cols);
}

void matmul_f32__neon(const float* W, const float* X, size_t ldx, float* Y, size_t ldy, size_t rows, size_t cols,
                      size_t T) {
  token_tiles<kTile>(T, [&](auto nt, size_t t) {
    rows_float<decltype(nt)::value>(LoadF32{W, cols}, X + t * ldx, ldx, Y + t * ldy, ldy, rows, cols);
  });
}
void matmul_f16__neon(const uint16_t* W, const float* X, size_t ldx, float* Y, size_t ldy, size_t rows, size_t cols,
                      size_t T) {
  token_tiles<kTile>(T, [&](auto nt, size_t t) {
    rows_float<decltype(nt)::value>(LoadF16{W, cols}, X + t * ldx, ldx, Y + t * ldy, ldy, rows, cols);
  });
}
void matmul_q8__neon(const int8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy, size_t rows,
                     size_t cols, size_t T) {
  token_tiles<kTile>(T, [&](auto nt, size_t t) { rows_q8<decltype(nt)::value>(W, scales, a.x + t * a.ldx, a.ldx, Y + t * ldy, ldy, rows, cols); });
}
void matmul_q4__neon(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y, size_t ldy,
                     size_t rows, size_t cols, size_t T) {
  token_tiles<kTile>(T, [&](auto nt, size_t t) {
    rows_q4<decltype(nt)::value>(W, scales, group, a.x + t * a.ldx, a.ldx, Y + t * ldy, ldy, rows, cols);
  });
}

// ---- the 16-row layouts (kernels.h, q8x16_value / q4x16_value)
//
// A load of 16 bytes holds 4 rows (one per 32-bit lane) and 4 bytes of each; shifting and masking a
// lane gives one column of 4 rows at once, as f32, multiplied with that column's activation
// (vfmaq_n_f32), so no lane ever crosses to another row. The stored offset (8 for int4, 128 for int8)
// is taken off once per sum, as offset * sum(x), not per weight. int4: per scale group the columns'
// products are summed in column order, then times the group's scales; int8: one sum over every
// column, then times the rows' scales. Tiles of 2 tokens (the accumulators of 16 rows fill the registers); every
// token sees the same sequence of operations, so T tokens give the bits of T single tokens.
namespace {
inline float32x4_t f16x4(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

// One column of 4 rows from their lanes' 4 bytes: (v >> shift) & mask, as f32 (still offset).
inline float32x4_t column(uint32x4_t v, int shift, uint32_t mask) {
  return vcvtq_f32_u32(vandq_u32(vshlq_u32(v, vdupq_n_s32(-shift)), vdupq_n_u32(mask)));
}

template <size_t NT>
inline void x16_q4_tile(const uint8_t* W, const uint16_t* S, size_t cols, size_t group, const float* X, size_t ldx,
                        float* Y, size_t ldy) {
  float32x4_t acc[NT][4];
  for (size_t t = 0; t < NT; ++t)
    for (int h = 0; h < 4; ++h) acc[t][h] = vdupq_n_f32(0);
  for (size_t g = 0; g < cols / group; ++g) {
    float32x4_t part[NT][4];
    for (size_t t = 0; t < NT; ++t)
      for (int h = 0; h < 4; ++h) part[t][h] = vdupq_n_f32(0);
    for (size_t k = g * group / 8; k < (g + 1) * group / 8; ++k) {
      uint32x4_t v[4];
      for (int h = 0; h < 4; ++h) v[h] = vreinterpretq_u32_u8(vld1q_u8(W + k * 64 + 16 * h));
      for (int j = 0; j < 4; ++j)
        for (int h = 0; h < 4; ++h) {
          const float32x4_t lo = column(v[h], 8 * j, 0xF), hi = column(v[h], 8 * j + 4, 0xF);
          for (size_t t = 0; t < NT; ++t) {
            const float* x = X + t * ldx + 8 * k + j;
            part[t][h] = vfmaq_n_f32(part[t][h], lo, x[0]);
            part[t][h] = vfmaq_n_f32(part[t][h], hi, x[4]);
          }
        }
    }
    for (size_t t = 0; t < NT; ++t) {  // sum (u - 8) x = sum u x - 8 sum x
      float xs = 0.f;
      for (size_t c = g * group; c < (g + 1) * group; ++c) xs += X[t * ldx + c];
      for (int h = 0; h < 4; ++h) part[t][h] = vfmaq_n_f32(part[t][h], vdupq_n_f32(xs), -8.f);
    }
    for (int h = 0; h < 4; ++h) {
      const float32x4_t sc = f16x4(S + g * 16 + 4 * h);
      for (size_t t = 0; t < NT; ++t) acc[t][h] = vfmaq_f32(acc[t][h], part[t][h], sc);
    }
  }
  for (size_t t = 0; t < NT; ++t)
    for (int h = 0; h < 4; ++h) vst1q_f32(Y + t * ldy + 4 * h, acc[t][h]);
}

template <size_t NT>
inline void x16_q8_tile(const uint8_t* W, const float* S, size_t cols, const float* X, size_t ldx, float* Y,
                        size_t ldy) {
  float32x4_t acc[NT][4];
  for (size_t t = 0; t < NT; ++t)
    for (int h = 0; h < 4; ++h) acc[t][h] = vdupq_n_f32(0);
  for (size_t k = 0; k < cols / 4; ++k) {
    uint32x4_t v[4];
    for (int h = 0; h < 4; ++h) v[h] = vreinterpretq_u32_u8(vld1q_u8(W + k * 64 + 16 * h));
    for (int j = 0; j < 4; ++j)
      for (int h = 0; h < 4; ++h) {
        const float32x4_t w = column(v[h], 8 * j, 0xFF);
        for (size_t t = 0; t < NT; ++t) acc[t][h] = vfmaq_n_f32(acc[t][h], w, X[t * ldx + 4 * k + j]);
      }
  }
  for (size_t t = 0; t < NT; ++t) {  // sum (u - 128) x = sum u x - 128 sum x
    float xs = 0.f;
    for (size_t c = 0; c < cols; ++c) xs += X[t * ldx + c];
    for (int h = 0; h < 4; ++h) {
      const float32x4_t y = vfmaq_n_f32(acc[t][h], vdupq_n_f32(xs), -128.f);
      vst1q_f32(Y + t * ldy + 4 * h, vmulq_f32(y, vld1q_f32(S + 4 * h)));
    }
  }
}

}  // namespace

void matmul_q8x16__neon(const uint8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy, size_t rows,
                        size_t cols, size_t T) {
  for (size_t r = 0; r < rows; r += 16)
    token_tiles<2>(T, [&](auto nt, size_t t) {
      x16_q8_tile<decltype(nt)::value>(W + r * cols, scales + r, cols, a.x + t * a.ldx, a.ldx, Y + t * ldy + r, ldy);
    });
}
void matmul_q4x16__neon(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y, size_t ldy,
                        size_t rows, size_t cols, size_t T) {
  for (size_t r = 0; r < rows; r += 16)
    token_tiles<2>(T, [&](auto nt, size_t t) {
      x16_q4_tile<decltype(nt)::value>(W + r * (cols / 2), scales + r * (cols / group), cols, group, a.x + t * a.ldx,
                                       a.ldx, Y + t * ldy + r, ldy);
    });
}

// ---- scans and row ops (scans.inl, rowops.inl) over 4 lanes
namespace {
// e^x for 4 floats: exp8 of kernels_avx2.cc (Cephes' expf) in NEON. x clamped to [-87.3, 88.3]; NaN
// passes (FMIN/FMAX return NaN); e^x = 2^n e^r with |r| <= ln2/2, e^r by a degree-6 polynomial.
inline float32x4_t exp4(float32x4_t x) {
  x = vmaxq_f32(vdupq_n_f32(-87.3f), vminq_f32(vdupq_n_f32(88.3f), x));
  const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
  p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
  p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
  p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.f)), p, vmulq_f32(r, r));
  const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

struct V4 {
  using R = float32x4_t;
  static constexpr size_t W = 4;
  static R load(const float* p) { return vld1q_f32(p); }
  static R load_h(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
  static void store(float* p, R v) { vst1q_f32(p, v); }
  static R set1(float v) { return vdupq_n_f32(v); }
  static R zero() { return vdupq_n_f32(0.f); }
  static R mul(R a, R b) { return vmulq_f32(a, b); }
  static R fmadd(R a, R b, R c) { return vfmaq_f32(c, a, b); }   // a b + c
  static R fnmadd(R a, R b, R c) { return vfmsq_f32(c, a, b); }  // c - a b
  static float sum(R v) { return vaddvq_f32(v); }
  static R sums(const R* v) {  // lane k: sum(v[k]), for W vectors
    return vpaddq_f32(vpaddq_f32(v[0], v[1]), vpaddq_f32(v[2], v[3]));
  }
  static R add(R a, R b) { return vaddq_f32(a, b); }
  static R sub(R a, R b) { return vsubq_f32(a, b); }
  static R div(R a, R b) { return vdivq_f32(a, b); }
  // a > b ? a : b, so b on NaN as x86's maxps (relu^2 of NaN is 0, as in the reference)
  static R max(R a, R b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }
  static R abs(R a) { return vabsq_f32(a); }
  static R neg_select(R x, R a, R b) { return vbslq_f32(vcltq_f32(x, vdupq_n_f32(0.f)), a, b); }
  static R exp(R x) { return exp4(x); }
};
#include "kernels/cpu/scans.inl"
#include "kernels/cpu/rowops.inl"
}  // namespace

void mamba1_scan__neon(float* s, const float* A, const float* dt, const float* x, const float* B, const float* C,
                       const float* D, const float* z, float* y, size_t E, size_t N, size_t c0, size_t c1) {
  mamba1_scan_v<V4>(s, A, dt, x, B, C, D, z, y, E, N, c0, c1);
}
void s4d_step__neon(float* s, const float* A, const float* C, const float* D, const float* u, float* y, size_t H,
                    size_t M) {
  s4d_step_v<V4>(s, A, C, D, u, y, H, M);
}
void mamba2_ssd__neon(float* S, const float* x, const float* B, const float* C, size_t ldx, const float* dt,
                      const float* A, const float* D, float* y, size_t T, size_t H, size_t P, size_t N, size_t G,
                      float* work, size_t h0, size_t h1) {
  ssd_scan_v<V4>(S, x, B, C, ldx, dt, A, D, y, T, H, P, N, G, work, h0, h1);
}
void wkv_scan__neon(float* S, const WkvIo& io, size_t T, size_t H, size_t K, size_t V, bool read_first, float* work,
                    size_t h0, size_t h1) {
  wkv_scan_v<V4>(S, io, T, H, K, V, read_first, work, h0, h1);
}
void exp__neon(float* y, size_t n) { exp_v<V4>(y, n); }
void act__neon(Act kind, float* y, size_t n) { act_v<V4>(kind, y, n); }
void conv_silu__neon(float* hist, const float* w, const float* b, const float* X, size_t ldx, float* Y, size_t T,
                     size_t C, size_t K, bool silu, size_t c0, size_t c1) {
  conv_silu_v<V4>(hist, w, b, X, ldx, Y, T, C, K, silu, c0, c1);
}
void gated_rmsnorm__neon(float* Y, const float* Z, size_t ldz, const float* w, size_t n, size_t E, size_t G,
                         float eps) {
  gated_rmsnorm_v<V4>(Y, Z, ldz, w, n, E, G, eps);
}
void layernorm__neon(const float* X, const float* w, const float* b, float* Y, size_t n, size_t d, float eps) {
  layernorm_v<V4>(X, w, b, Y, n, d, eps);
}
void attend_group__neon(const void* K, const void* V, bool f16, size_t stride, size_t n, const float* Q, size_t G,
                        size_t D, float scale, float* scores, size_t ldsc, float* Y) {
  attend_group_v<V4>(K, V, f16, stride, n, Q, G, D, scale, scores, ldsc, Y);
}

}  // namespace kernels
}  // namespace rill
