// AVX2 + FMA + F16C kernels: matrix-vector products and the Mamba-1 scan step. This file alone is
// compiled with -mavx2 -mfma -mf16c; it is only called after the CPU reported those features.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cmath>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/token_tiles.h"
#include "kernels/ref/kernels_ref.h"

namespace rill {
namespace kernels {

namespace {
inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}

template <typename LoadFn>
inline void matvec_rows4(LoadFn load, const float* x, float* y, size_t rows, size_t cols) {
  const size_t c8 = cols & ~size_t(7);
  size_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (size_t c = 0; c < c8; c += 8) {
      const __m256 xv = _mm256_loadu_ps(x + c);
      a0 = _mm256_fmadd_ps(load(r + 0, c), xv, a0);
      a1 = _mm256_fmadd_ps(load(r + 1, c), xv, a1);
      a2 = _mm256_fmadd_ps(load(r + 2, c), xv, a2);
      a3 = _mm256_fmadd_ps(load(r + 3, c), xv, a3);
    }
    float s[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
    // Tails use explicit fma: left to the compiler, contraction differs between loop shapes and the
    // batched kernel (matmul_rows) would no longer match bit for bit.
    for (size_t c = c8; c < cols; ++c) {
      for (int i = 0; i < 4; ++i) s[i] = std::fma(load.scalar(r + i, c), x[c], s[i]);
    }
    for (int i = 0; i < 4; ++i) y[r + i] = s[i];
  }
  for (; r < rows; ++r) {
    __m256 a = _mm256_setzero_ps();
    for (size_t c = 0; c < c8; c += 8) a = _mm256_fmadd_ps(load(r, c), _mm256_loadu_ps(x + c), a);
    float s = hsum(a);
    for (size_t c = c8; c < cols; ++c) s = std::fma(load.scalar(r, c), x[c], s);
    y[r] = s;
  }
}

struct LoadF32 {
  const float* W;
  size_t cols;
  __m256 operator()(size_t r, size_t c) const { return _mm256_loadu_ps(W + r * cols + c); }
  float scalar(size_t r, size_t c) const { return W[r * cols + c]; }
};

struct LoadF16 {
  const uint16_t* W;
  size_t cols;
  __m256 operator()(size_t r, size_t c) const {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(W + r * cols + c)));
  }
  float scalar(size_t r, size_t c) const { return _cvtsh_ss(W[r * cols + c]); }
};
}  // namespace

// T tokens, in tiles of 8: each 8-column slice of a row is loaded (and converted) once and multiplied
// into every token of the tile, one accumulator per token. Each token's accumulator sees exactly the
// sequence matvec_rows4 gives its row (one chain over c, then the fma tail), so results equal T matvec
// calls bit for bit, and the 8 independent chains keep the FMA units busy.
template <size_t NT, typename LoadFn>
inline void matmul_tile(LoadFn load, const float* X, size_t ldx, float* Y, size_t ldy, size_t rows, size_t cols) {
  const size_t c8 = cols & ~size_t(7);
  for (size_t r = 0; r < rows; ++r) {
    __m256 a[NT];
    for (size_t t = 0; t < NT; ++t) a[t] = _mm256_setzero_ps();
    for (size_t c = 0; c < c8; c += 8) {
      const __m256 w = load(r, c);
      for (size_t t = 0; t < NT; ++t) a[t] = _mm256_fmadd_ps(w, _mm256_loadu_ps(X + t * ldx + c), a[t]);
    }
    for (size_t t = 0; t < NT; ++t) {
      float s = hsum(a[t]);
      for (size_t c = c8; c < cols; ++c) s = std::fma(load.scalar(r, c), X[t * ldx + c], s);
      Y[t * ldy + r] = s;
    }
  }
}

template <typename LoadFn>
inline void matmul_rows(LoadFn load, const float* X, size_t ldx, float* Y, size_t ldy, size_t T, size_t rows,
                        size_t cols) {
  size_t t = 0;
  for (; t + 8 <= T; t += 8) matmul_tile<8>(load, X + t * ldx, ldx, Y + t * ldy, ldy, rows, cols);
  const float* x = X + t * ldx;
  float* y = Y + t * ldy;
  switch (T - t) {
    case 7: matmul_tile<7>(load, x, ldx, y, ldy, rows, cols); break;
    case 6: matmul_tile<6>(load, x, ldx, y, ldy, rows, cols); break;
    case 5: matmul_tile<5>(load, x, ldx, y, ldy, rows, cols); break;
    case 4: matmul_tile<4>(load, x, ldx, y, ldy, rows, cols); break;
    case 3: matmul_tile<3>(load, x, ldx, y, ldy, rows, cols); break;
    case 2: matmul_tile<2>(load, x, ldx, y, ldy, rows, cols); break;
    case 1: matmul_tile<1>(load, x, ldx, y, ldy, rows, cols); break;
    default: break;
  }
}

void matmul_f32__avx2(const float* W, const float* X, size_t ldx, float* Y, size_t ldy, size_t rows, size_t cols,
                      size_t T) {
  matmul_rows(LoadF32{W, cols}, X, ldx, Y, ldy, T, rows, cols);
}

void matmul_f16__avx2(const uint16_t* W, const float* X, size_t ldx, float* Y, size_t ldy, size_t rows, size_t cols,
                      size_t T) {
  matmul_rows(LoadF16{W, cols}, X, ldx, Y, ldy, T, rows, cols);
}

void matvec_f32__avx2(const float* W, const float* x, float* y, size_t rows, size_t cols) {
  matvec_rows4(LoadF32{W, cols}, x, y, rows, cols);
}

void matvec_f16__avx2(const uint16_t* W, const float* x, float* y, size_t rows, size_t cols) {
  matvec_rows4(LoadF16{W, cols}, x, y, rows, cols);
}

}  // namespace kernels
}  // namespace rill

namespace rill {
namespace kernels {
namespace {
// e^x for 8 floats, Cephes' expf: x clamped to [-87.3, 88.3] (2^n stays a normal float; NaN passes: min/max return
// their second operand on NaN), e^x = 2^n e^r with |r| <= ln2/2, e^r by a degree-6 polynomial; about
// 1 ulp (kernels_test measures it). The scans and the row ops (scans.inl, rowops.inl) share it.
inline __m256 exp8(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-87.3f), _mm256_min_ps(_mm256_set1_ps(88.3f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
}  // namespace

}  // namespace kernels
}  // namespace rill

// Quantized kernels, AVX2: u8 x s8 products through maddubs (no saturation: |u| <= 127 and |s| <= 127
// give pair sums <= 32258) then madd with ones into int32.
static inline __m256i rill_dot_avx2(__m256i acc, __m256i u, __m256i s) {
  const __m256i p16 = _mm256_maddubs_epi16(u, s);
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}
#define QDOT rill_dot_avx2
#define QSUFFIX q_avx2
#include "kernels/cpu/x86/qmatvec.inl"
#undef QDOT
#undef QSUFFIX

namespace rill {
namespace kernels {
void prepare_act__avx2(const float* X, size_t ldx, size_t T, size_t cols, size_t group, unsigned char* work,
                       QAct* a, size_t t0, size_t t1) {
  q_avx2::prepare_act(X, ldx, T, cols, group, work, a, t0, t1);
}
void matvec_q8__avx2(const int8_t* W, const float* scales, const QAct& a, float* y, size_t rows, size_t cols) {
  q_avx2::matvec_q8(W, scales, a, y, rows, cols);
}
void matvec_q4__avx2(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* y, size_t rows,
                     size_t cols) {
  q_avx2::matvec_q4(W, scales, group, a, y, rows, cols);
}
void matmul_q8__avx2(const int8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy, size_t rows,
                     size_t cols, size_t T) {
  q_avx2::matmul_q8(W, scales, a, Y, ldy, rows, cols, T);
}
void matmul_q4__avx2(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y, size_t ldy,
                     size_t rows, size_t cols, size_t T) {
  q_avx2::matmul_q4(W, scales, group, a, Y, ldy, rows, cols, T);
}
}  // namespace kernels
}  // namespace rill

namespace rill {
namespace kernels {
namespace {
struct V8 {
  using R = __m256;
  static constexpr size_t W = 8;
  static R load(const float* p) { return _mm256_loadu_ps(p); }
  static R load_h(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static void store(float* p, R v) { _mm256_storeu_ps(p, v); }
  static R set1(float v) { return _mm256_set1_ps(v); }
  static R zero() { return _mm256_setzero_ps(); }
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R fmadd(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R fnmadd(R a, R b, R c) { return _mm256_fnmadd_ps(a, b, c); }
  static float sum(R v) { return hsum(v); }
  static R sums(const R* v) {  // lane k: sum(v[k]), for W vectors
    const R b0 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));  // v0..v3: low, high halves
    const R b1 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(b0, b1, 0x20), _mm256_permute2f128_ps(b0, b1, 0x31));
  }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static R div(R a, R b) { return _mm256_div_ps(a, b); }
  static R max(R a, R b) { return _mm256_max_ps(a, b); }
  static R abs(R a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.f), a); }
  static R neg_select(R x, R a, R b) {
    return _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
  }
  static R exp(R x) { return exp8(x); }
};
#include "kernels/cpu/scans.inl"
#include "kernels/cpu/rowops.inl"
}  // namespace

void mamba2_ssd__avx2(float* S, const float* x, const float* B, const float* C, size_t ldx, const float* dt,
                      const float* A, const float* D, float* y, size_t T, size_t H, size_t P, size_t N, size_t G,
                      float* work, size_t h0, size_t h1) {
  ssd_scan_v<V8>(S, x, B, C, ldx, dt, A, D, y, T, H, P, N, G, work, h0, h1);
}
void mamba1_scan__avx2(float* s, const float* A, const float* dt, const float* x, const float* B, const float* C,
                       const float* D, const float* z, float* y, size_t E, size_t N, size_t c0, size_t c1) {
  mamba1_scan_v<V8>(s, A, dt, x, B, C, D, z, y, E, N, c0, c1);
}
void s4d_step__avx2(float* s, const float* A, const float* C, const float* D, const float* u, float* y, size_t H,
                    size_t M) {
  s4d_step_v<V8>(s, A, C, D, u, y, H, M);
}
void exp__avx2(float* y, size_t n) { exp_v<V8>(y, n); }
void act__avx2(Act kind, float* y, size_t n) { act_v<V8>(kind, y, n); }
void attend_group__avx2(const void* K, const void* V, bool f16, size_t stride, size_t n, const float* Q, size_t G,
                        size_t D, float scale, float* scores, size_t ldsc, float* Y) {
  attend_group_v<V8>(K, V, f16, stride, n, Q, G, D, scale, scores, ldsc, Y);
}
void conv_silu__avx2(float* hist, const float* w, const float* b, const float* X, size_t ldx, float* Y, size_t T,
                     size_t C, size_t K, bool silu, size_t c0, size_t c1) {
  conv_silu_v<V8>(hist, w, b, X, ldx, Y, T, C, K, silu, c0, c1);
}
void gated_rmsnorm__avx2(float* Y, const float* Z, size_t ldz, const float* w, size_t n, size_t E, size_t G,
                         float eps) {
  gated_rmsnorm_v<V8>(Y, Z, ldz, w, n, E, G, eps);
}
void layernorm__avx2(const float* X, const float* w, const float* b, float* Y, size_t n, size_t d, float eps) {
  layernorm_v<V8>(X, w, b, Y, n, d, eps);
}
void wkv_scan__avx2(float* S, const WkvIo& io, size_t T, size_t H, size_t K, size_t V, bool read_first, float* work,
                    size_t h0, size_t h1) {
  wkv_scan_v<V8>(S, io, T, H, K, V, read_first, work, h0, h1);
}
// ---- the 16-row layouts (kernels.h, q8x16_value / q4x16_value) with int8 activations
//
// Two 8-lane vectors hold a load's 16 rows. Without VNNI, vpmaddubsw (u8 x s8 -> pairs of int16) then
// vpmaddwd with ones gives each 32-bit lane the sum of 4 products, as vpdpbusd would:
//   int4: nibbles (0..15) x q, pairs at most 2 * 15 * 127, no saturation; the sum starts at -8 sum(q).
//   int8: (w + 128) x q could saturate a pair, so the weights are made signed again (w = u ^ 0x80) and
//         the signs move onto them: |q| x sign(w, q), pairs at most 2 * 127 * 128; exact, no correction.
// A block's 32 columns of 16 rows are unpacked once into L1 (16 vectors) and meet every token of the
// tile; per block and token one conversion and one FMA cover 8 rows. One kernel for every T.
namespace {
constexpr size_t kX16NT = 4;

inline __m256i dot4(__m256i u, __m256i q) {  // per 32-bit lane: sum of 4 u8 x s8 products
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), _mm256_set1_epi16(1));
}

template <size_t NT, bool Int4>
inline void tile_x16(const uint8_t* W, const void* S, size_t cols, size_t group, const QAct& a, size_t t0, float* Y,
                     size_t ldy) {
  const size_t nb = cols / 32, lds = a.ldq / 32, bpg = Int4 ? group / 32 : nb;
  alignas(32) __m256i u[16];  // [column quad 0..7][row half 0..1]
  __m256 acc[NT][2];
  for (size_t t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
  // int4: the current group's scales of the 16 rows (set at b = 0); int8: the rows' scales, at the end
  __m256 sw[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (size_t b = 0; b < nb; ++b) {
    if (Int4) {
      if (b % bpg == 0) {
        const uint16_t* s = static_cast<const uint16_t*>(S) + (b / bpg) * 16;
        sw[0] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
        sw[1] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 8)));
      }
      const uint8_t* p = W + b * 256;
      const __m256i low = _mm256_set1_epi8(0x0F);
      for (int k = 0; k < 4; ++k)
        for (int h = 0; h < 2; ++h) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 64 * k + 32 * h));
          u[(2 * k) * 2 + h] = _mm256_and_si256(v, low);                            // columns 8k..8k+3
          u[(2 * k + 1) * 2 + h] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);  // columns 8k+4..8k+7
        }
    } else {
      const uint8_t* p = W + b * 512;
      const __m256i c80 = _mm256_set1_epi8(static_cast<char>(0x80));
      for (int k = 0; k < 16; ++k)
        u[k] = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * k)), c80);
    }
    for (size_t t = 0; t < NT; ++t) {
      const int32_t* q = reinterpret_cast<const int32_t*>(a.q + (t0 + t) * a.ldq + b * 32);
      const size_t blk = (t0 + t) * lds + b;
      __m256i d0 = _mm256_set1_epi32(Int4 ? -8 * a.sum[blk] : 0), d1 = d0;
      for (int k = 0; k < 8; ++k) {
        const __m256i qb = _mm256_set1_epi32(q[k]);
        if (Int4) {
          d0 = _mm256_add_epi32(d0, dot4(u[2 * k], qb));
          d1 = _mm256_add_epi32(d1, dot4(u[2 * k + 1], qb));
        } else {
          const __m256i qa = _mm256_abs_epi8(qb);
          d0 = _mm256_add_epi32(d0, dot4(qa, _mm256_sign_epi8(u[2 * k], qb)));
          d1 = _mm256_add_epi32(d1, dot4(qa, _mm256_sign_epi8(u[2 * k + 1], qb)));
        }
      }
      const __m256 s = _mm256_set1_ps(a.s[blk]);
      acc[t][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d0), Int4 ? _mm256_mul_ps(sw[0], s) : s, acc[t][0]);
      acc[t][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d1), Int4 ? _mm256_mul_ps(sw[1], s) : s, acc[t][1]);
    }
  }
  if (!Int4) {  // int8: the rows' scales once at the end
    sw[0] = _mm256_loadu_ps(static_cast<const float*>(S));
    sw[1] = _mm256_loadu_ps(static_cast<const float*>(S) + 8);
  }
  for (size_t t = 0; t < NT; ++t) {
    _mm256_storeu_ps(Y + (t0 + t) * ldy, Int4 ? acc[t][0] : _mm256_mul_ps(acc[t][0], sw[0]));
    _mm256_storeu_ps(Y + (t0 + t) * ldy + 8, Int4 ? acc[t][1] : _mm256_mul_ps(acc[t][1], sw[1]));
  }
}

template <bool Int4>
void product_x16(const uint8_t* W, const void* S, size_t group, const QAct& a, float* Y, size_t ldy, size_t rows,
                 size_t cols, size_t T) {
  for (size_t r = 0; r < rows; r += 16) {
    const uint8_t* w = W + r * (Int4 ? cols / 2 : cols);
    const void* s = Int4 ? static_cast<const void*>(static_cast<const uint16_t*>(S) + r * (cols / group))
                         : static_cast<const void*>(static_cast<const float*>(S) + r);
    token_tiles<kX16NT>(T, [&](auto nt, size_t t) {
      tile_x16<decltype(nt)::value, Int4>(w, s, cols, group, a, t, Y + r, ldy);
    });
  }
}
}  // namespace

void matmul_q8x16__avx2(const uint8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy, size_t rows,
                        size_t cols, size_t T) {
  product_x16<false>(W, scales, 0, a, Y, ldy, rows, cols, T);
}
void matmul_q4x16__avx2(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y, size_t ldy,
                        size_t rows, size_t cols, size_t T) {
  product_x16<true>(W, scales, group, a, Y, ldy, rows, cols, T);
}

}  // namespace kernels
}  // namespace rill
