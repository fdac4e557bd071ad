// Quantized matrix-vector kernels with int8 activations, included by kernels_avx2.cc and
// kernels_avx512.cc with QDOT(acc, u8, s8) defined as the ISA's u8 x s8 -> int32 dot-accumulate
// (4 products per 32-bit lane) and QSUFFIX naming the functions.
//
// Activations are quantized per 32-element block: x[b*32+j] ~ sx[b] * qx[b*32+j], |qx| <= 127.
//   q8 (signed weights, one scale per row):  y[r] = sw[r] * sum_b sx[b] * sum_j w[r,j] qx[j]
//      computed as dot(|qx|, w * sign(qx)) so the unsigned operand is the activation.
//   q4 (nibbles u = q + 8 in 0..15, one f16 scale per group of G):
//      y[r] = sum_g sw[r,g] * sum_{b in g} sx[b] * (dot(u, qx) - 8 * sum(qx))
// Columns are processed in chunks of kChunk so the quantized activations live on the stack.
#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace rill {
namespace kernels {
namespace QSUFFIX {

// Columns per chunk: 4 KiB of int8 activations per token on the stack. Wide enough that the rows of
// every matrix up to 4096 columns stream in one sequential pass (narrower chunks cost ~20 % decode).
constexpr size_t kChunk = 4096;

inline float hsum8(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}

// Quantizes n (a multiple of 32) floats into blocks of 32: qx, per-block scale sx, per-block sum of qx.
inline void quantize_blocks(const float* x, size_t n, int8_t* qx, float* sx, int32_t* sumx) {
  for (size_t b = 0; b < n / 32; ++b) {
    const float* p = x + b * 32;
    __m256 m = _mm256_setzero_ps();
    const __m256 sign = _mm256_set1_ps(-0.f);
    for (int k = 0; k < 4; ++k) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(p + 8 * k)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    const float amax = _mm_cvtss_f32(h);
    const float s = amax / 127.f;
    const __m256 inv = _mm256_set1_ps(s > 0 ? 1.f / s : 0.f);
    __m256i q[4];
    for (int k = 0; k < 4; ++k)
      q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(p + 8 * k), inv),
                                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    // pack 32 int32 -> 32 int8 in order
    const __m256i a = _mm256_packs_epi32(q[0], q[1]), c = _mm256_packs_epi32(q[2], q[3]);
    __m256i bytes = _mm256_packs_epi16(a, c);
    bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qx + b * 32), bytes);
    const __m256i s16 = _mm256_madd_epi16(_mm256_add_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(bytes)),
                                                           _mm256_cvtepi8_epi16(_mm256_extracti128_si256(bytes, 1))),
                                          _mm256_set1_epi16(1));
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s16), _mm256_extracti128_si256(s16, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
    sumx[b] = _mm_cvtsi128_si32(t);
    sx[b] = s;
  }
}

void matvec_q8(const int8_t* W, const float* scales, const float* x, float* y, size_t rows, size_t cols) {
  alignas(32) int8_t qx[kChunk];
  float sx[kChunk / 32];
  int32_t sumx[kChunk / 32];
  for (size_t r = 0; r < rows; ++r) y[r] = 0.f;
  for (size_t c0 = 0; c0 < cols; c0 += kChunk) {
    const size_t n = cols - c0 < kChunk ? cols - c0 : kChunk;
    quantize_blocks(x + c0, n, qx, sx, sumx);
    const size_t nb = n / 32;
    for (size_t r = 0; r < rows; ++r) {
      const int8_t* w = W + r * cols + c0;
      __m256 acc = _mm256_setzero_ps();
      for (size_t b = 0; b < nb; ++b) {
        const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(qx + b * 32));
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + b * 32));
        __m256i d = _mm256_setzero_si256();
        d = QDOT(d, _mm256_sign_epi8(xv, xv), _mm256_sign_epi8(wv, xv));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(sx[b]), acc);
      }
      y[r] += hsum8(acc) * scales[r];
    }
  }
}

void matvec_q4(const uint8_t* W, const uint16_t* scales, size_t group, const float* x, float* y, size_t rows,
               size_t cols) {
  alignas(32) int8_t qx[kChunk];
  float sx[kChunk / 32];
  int32_t sumx[kChunk / 32];
  const size_t groups = cols / group, bpg = group / 32;  // blocks per group
  const __m256i low = _mm256_set1_epi8(0x0F);
  for (size_t r = 0; r < rows; ++r) y[r] = 0.f;
  for (size_t c0 = 0; c0 < cols; c0 += kChunk) {  // kChunk is a multiple of every group size
    const size_t n = cols - c0 < kChunk ? cols - c0 : kChunk;
    quantize_blocks(x + c0, n, qx, sx, sumx);
    const size_t g0 = c0 / group, ng = n / group;
    for (size_t r = 0; r < rows; ++r) {
      const uint8_t* w = W + r * (cols / 2) + c0 / 2;
      const uint16_t* sw = scales + r * groups + g0;
      __m256 acc = _mm256_setzero_ps();
      float corr = 0.f;
      for (size_t g = 0; g < ng; ++g) {
        __m256 accg = _mm256_setzero_ps();
        float corrg = 0.f;
        for (size_t k = 0; k < bpg; ++k) {
          const size_t b = g * bpg + k;
          const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + b * 16));
          const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
          const __m256i u = _mm256_and_si256(both, low);  // elements 0..15 then 16..31, values 0..15
          const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(qx + b * 32));
          __m256i d = _mm256_setzero_si256();
          d = QDOT(d, u, xv);
          accg = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(sx[b]), accg);
          corrg += 8.f * static_cast<float>(sumx[b]) * sx[b];
        }
        const float s = _cvtsh_ss(sw[g]);
        acc = _mm256_fmadd_ps(accg, _mm256_set1_ps(s), acc);
        corr += corrg * s;
      }
      y[r] += hsum8(acc) - corr;
    }
  }
}

// T tokens at once (T <= kMaxTokens): each weight row is read once and applied to every token, so
// prefill streams the weights once per T tokens. Per token the arithmetic is exactly matvec_q8's /
// matvec_q4's (same blocks, same order), so results are bit-identical to T separate calls.

void matmul_q8(const int8_t* W, const float* scales, const float* X, float* Y, size_t rows, size_t cols, size_t T,
               size_t ldx, size_t ldy) {
  alignas(32) int8_t qx[kMaxTokens][kChunk];  // 32 KiB + 8 KiB of scales: the stack this call needs
  float sx[kMaxTokens][kChunk / 32];
  int32_t sumx[kMaxTokens][kChunk / 32];
  constexpr size_t kC = kChunk;  // the same chunks as matvec_q8, so the sums group identically
  for (size_t t = 0; t < T; ++t)
    for (size_t r = 0; r < rows; ++r) Y[t * ldy + r] = 0.f;
  for (size_t c0 = 0; c0 < cols; c0 += kC) {
    const size_t n = cols - c0 < kC ? cols - c0 : kC;
    for (size_t t = 0; t < T; ++t) quantize_blocks(X + t * ldx + c0, n, qx[t], sx[t], sumx[t]);
    const size_t nb = n / 32;
    for (size_t r = 0; r < rows; ++r) {
      const int8_t* w = W + r * cols + c0;
      for (size_t t = 0; t < T; ++t) {
        __m256 acc = _mm256_setzero_ps();
        for (size_t b = 0; b < nb; ++b) {
          const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(qx[t] + b * 32));
          const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + b * 32));
          __m256i d = _mm256_setzero_si256();
          d = QDOT(d, _mm256_sign_epi8(xv, xv), _mm256_sign_epi8(wv, xv));
          acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(sx[t][b]), acc);
        }
        Y[t * ldy + r] += hsum8(acc) * scales[r];
      }
    }
  }
}

void matmul_q4(const uint8_t* W, const uint16_t* scales, size_t group, const float* X, float* Y, size_t rows,
               size_t cols, size_t T, size_t ldx, size_t ldy) {
  alignas(32) int8_t qx[kMaxTokens][kChunk];
  float sx[kMaxTokens][kChunk / 32];
  int32_t sumx[kMaxTokens][kChunk / 32];
  const size_t groups = cols / group, bpg = group / 32;
  const __m256i low = _mm256_set1_epi8(0x0F);
  for (size_t t = 0; t < T; ++t)
    for (size_t r = 0; r < rows; ++r) Y[t * ldy + r] = 0.f;
  for (size_t c0 = 0; c0 < cols; c0 += kChunk) {
    const size_t n = cols - c0 < kChunk ? cols - c0 : kChunk;
    for (size_t t = 0; t < T; ++t) quantize_blocks(X + t * ldx + c0, n, qx[t], sx[t], sumx[t]);
    const size_t g0 = c0 / group, ng = n / group;
    for (size_t r = 0; r < rows; ++r) {
      const uint8_t* w = W + r * (cols / 2) + c0 / 2;
      const uint16_t* sw = scales + r * groups + g0;
      for (size_t t = 0; t < T; ++t) {  // the same arithmetic as matvec_q4, per token
        __m256 acc = _mm256_setzero_ps();
        float corr = 0.f;
        for (size_t g = 0; g < ng; ++g) {
          __m256 accg = _mm256_setzero_ps();
          float corrg = 0.f;
          for (size_t k = 0; k < bpg; ++k) {
            const size_t b = g * bpg + k;
            const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + b * 16));
            const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
            const __m256i u = _mm256_and_si256(both, low);
            const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(qx[t] + b * 32));
            __m256i d = _mm256_setzero_si256();
            d = QDOT(d, u, xv);
            accg = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(sx[t][b]), accg);
            corrg += 8.f * static_cast<float>(sumx[t][b]) * sx[t][b];
          }
          const float sc = _cvtsh_ss(sw[g]);
          acc = _mm256_fmadd_ps(accg, _mm256_set1_ps(sc), acc);
          corr += corrg * sc;
        }
        Y[t * ldy + r] += hsum8(acc) - corr;
      }
    }
  }
}

}  // namespace QSUFFIX
}  // namespace kernels
}  // namespace rill
