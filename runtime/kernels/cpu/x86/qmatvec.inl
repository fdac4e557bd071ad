// Quantized matrix-vector kernels with int8 activations, included by kernels_avx2.cc and
// kernels_avx512.cc with QDOT(acc, u8, s8) defined as the ISA's u8 x s8 -> int32 dot-accumulate
// (4 products per 32-bit lane) and QSUFFIX naming the functions.
//
// Activations are quantized per 32-element block: x[b*32+j] ~ sx[b] * qx[b*32+j], |qx| <= 127.
//   q8 (signed weights, one scale per row):  y[r] = sw[r] * sum_b sx[b] * sum_j w[r,j] qx[j]
//      computed as dot(|qx|, w * sign(qx)) so the unsigned operand is the activation.
//   q4 (nibbles u = q + 8 in 0..15, one f16 scale per group of G):
//      y[r] = sum_g sw[r,g] * sum_{b in g} sx[b] * (dot(u, qx) - 8 * sum(qx))
// The activations are quantized once per product (prepare_act, into the caller's workspace) and
// shared by every thread's slice of rows. Each row's sum runs over column chunks of kChunk.
#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace rill {
namespace kernels {
namespace QSUFFIX {

// Columns per chunk: a row's partial sums are added chunk by chunk. Wide enough that the rows of every
// matrix up to 4096 columns stream in one sequential pass (narrower chunks cost ~20 % decode).
constexpr size_t kChunk = 4096;
// Tokens per pass over a slice of a weight row in the batched products: their int8 activations (at most
// 8 x 4 KiB) stay in L1 while the row slice is dotted with each.
constexpr size_t kTokenTile = 8;

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

// One row's dot product over a chunk of nb 32-element blocks. Two accumulators (even and odd blocks)
// so consecutive FMAs do not wait on each other. matvec and matmul both call these, so their results
// are identical.
// The pointers are bumped, and the empty asm keeps GCC from folding them back into base + index
// addressing: with indexed loads this loop ran ~4 % slower on DRAM-bound rows (Zen 4), with the
// same instructions otherwise.
inline float q8_row_dot(const int8_t* w, const int8_t* qx, const float* sx, size_t nb) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (; nb >= 2; nb -= 2, w += 64, qx += 64, sx += 2) {
    asm("" : "+r"(w), "+r"(qx), "+r"(sx));
    const __m256i x0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(qx));
    const __m256i x1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(qx + 32));
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
    const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32));
    const __m256i d0 = QDOT(_mm256_setzero_si256(), _mm256_sign_epi8(x0, x0), _mm256_sign_epi8(w0, x0));
    const __m256i d1 = QDOT(_mm256_setzero_si256(), _mm256_sign_epi8(x1, x1), _mm256_sign_epi8(w1, x1));
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d0), _mm256_set1_ps(sx[0]), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d1), _mm256_set1_ps(sx[1]), acc1);
  }
  if (nb) {
    const __m256i x0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(qx));
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
    const __m256i d0 = QDOT(_mm256_setzero_si256(), _mm256_sign_epi8(x0, x0), _mm256_sign_epi8(w0, x0));
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d0), _mm256_set1_ps(sx[0]), acc0);
  }
  return hsum8(_mm256_add_ps(acc0, acc1));
}

// q4: block b of group b / bpg; the block's float scale is sx[b] * sw[group]. corr[g] = 8 sum_{b in g}
// sx[b] sum(qx in b) removes the +8 of the stored nibbles; it depends on x only (computed per chunk).
inline float q4_row_dot(const uint8_t* w, const uint16_t* sw, const int8_t* qx, const float* sx, const float* corr,
                        size_t ng, size_t bpg) {
  const __m256i low = _mm256_set1_epi8(0x0F);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float c0 = 0.f, c1 = 0.f;  // the +8 corrections, two chains like the vector accumulators
  auto block = [&](size_t k) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + k * 16));
    const __m256i u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low);
    const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(qx + k * 32));
    return _mm256_cvtepi32_ps(QDOT(_mm256_setzero_si256(), u, xv));
  };
  if (bpg == 1) {  // groups of 32: one block per group, pairs of groups per step (bumped pointers, as q8)
    for (; ng >= 2; ng -= 2, w += 32, qx += 64, sw += 2, sx += 2, corr += 2) {
      asm("" : "+r"(w), "+r"(qx), "+r"(sw), "+r"(sx), "+r"(corr));
      const float s0 = _cvtsh_ss(sw[0]), s1 = _cvtsh_ss(sw[1]);
      acc0 = _mm256_fmadd_ps(block(0), _mm256_set1_ps(sx[0] * s0), acc0);
      acc1 = _mm256_fmadd_ps(block(1), _mm256_set1_ps(sx[1] * s1), acc1);
      c0 += corr[0] * s0;
      c1 += corr[1] * s1;
    }
    if (ng) {
      const float s0 = _cvtsh_ss(sw[0]);
      acc0 = _mm256_fmadd_ps(block(0), _mm256_set1_ps(sx[0] * s0), acc0);
      c0 += corr[0] * s0;
    }
  } else {  // groups of 64 or 128: an even number of blocks per group
    for (size_t g = 0, b = 0; g < ng; ++g) {
      const float sc = _cvtsh_ss(sw[g]);
      for (size_t j = 0; j < bpg; j += 2, b += 2) {
        acc0 = _mm256_fmadd_ps(block(b), _mm256_set1_ps(sx[b] * sc), acc0);
        acc1 = _mm256_fmadd_ps(block(b + 1), _mm256_set1_ps(sx[b + 1] * sc), acc1);
      }
      c0 += corr[g] * sc;
    }
  }
  return hsum8(_mm256_add_ps(acc0, acc1)) - (c0 + c1);
}

inline void q4_corrections(const float* sx, const int32_t* sumx, size_t ng, size_t bpg, float* corr) {
  for (size_t g = 0; g < ng; ++g) {
    float cg = 0.f;
    for (size_t j = 0; j < bpg; ++j) cg += 8.f * static_cast<float>(sumx[g * bpg + j]) * sx[g * bpg + j];
    corr[g] = cg;
  }
}

// QAct of T rows (rows [t0, t1) quantized): quantized blocks and, for int4 groups, the per-group +8 corrections.
void prepare_act(const float* X, size_t ldx, size_t T, size_t cols, size_t group, unsigned char* work, QAct* a,
                 size_t t0, size_t t1) {
  const ActLayout L = act_layout(T, cols);
  const size_t lb = L.ldq / 32;  // blocks per row
  int8_t* q = reinterpret_cast<int8_t*>(work);
  float* s = reinterpret_cast<float*>(work + L.s);
  int32_t* sum = reinterpret_cast<int32_t*>(work + L.sum);
  float* corr = reinterpret_cast<float*>(work + L.corr);
  for (size_t t = t0; t < t1; ++t) {
    quantize_blocks(X + t * ldx, cols, q + t * L.ldq, s + t * lb, sum + t * lb);
    if (group) q4_corrections(s + t * lb, sum + t * lb, cols / group, group / 32, corr + t * lb);
  }
  *a = QAct{X, ldx, q, s, corr, L.ldq, lb, sum};
}

void matvec_q8(const int8_t* W, const float* scales, const QAct& a, float* y, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) y[r] = 0.f;
  for (size_t c0 = 0; c0 < cols; c0 += kChunk) {
    const size_t n = cols - c0 < kChunk ? cols - c0 : kChunk;
    for (size_t r = 0; r < rows; ++r) y[r] += q8_row_dot(W + r * cols + c0, a.q + c0, a.s + c0 / 32, n / 32) * scales[r];
  }
}

void matvec_q4(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* y, size_t rows,
               size_t cols) {
  const size_t groups = cols / group, bpg = group / 32;  // blocks per group
  for (size_t r = 0; r < rows; ++r) y[r] = 0.f;
  for (size_t c0 = 0; c0 < cols; c0 += kChunk) {  // kChunk is a multiple of every group size
    const size_t n = cols - c0 < kChunk ? cols - c0 : kChunk;
    const size_t g0 = c0 / group, ng = n / group;
    for (size_t r = 0; r < rows; ++r)
      y[r] += q4_row_dot(W + r * (cols / 2) + c0 / 2, scales + r * groups + g0, a.q + c0, a.s + c0 / 32, a.corr + g0,
                         ng, bpg);
  }
}

// T tokens at once: each slice of a weight row is read once per tile of kTokenTile tokens and applied
// to each, so prefill streams the weights once per tile. Per token the arithmetic is exactly
// matvec_q8's / matvec_q4's (same blocks, same chunks, same order), so results are bit-identical to T
// separate calls.

// q8_row_dot for NT tokens at once: each pair of weight blocks is loaded once and dotted with every
// token's activations; token t's accumulators see exactly q8_row_dot's sequence (so the results are
// the same bits), and the NT x 2 independent chains overlap.
template <size_t NT>
inline void q8_row_dot_tokens(const int8_t* w, const int8_t* qx, size_t ldq, const float* sx, size_t lds, size_t nb,
                              float* out) {
  __m256 acc0[NT], acc1[NT];
  for (size_t t = 0; t < NT; ++t) acc0[t] = acc1[t] = _mm256_setzero_ps();
  size_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + b * 32));
    const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + b * 32 + 32));
    for (size_t t = 0; t < NT; ++t) {
      const int8_t* x = qx + t * ldq + b * 32;
      const __m256i x0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(x));
      const __m256i x1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(x + 32));
      const __m256i d0 = QDOT(_mm256_setzero_si256(), _mm256_sign_epi8(x0, x0), _mm256_sign_epi8(w0, x0));
      const __m256i d1 = QDOT(_mm256_setzero_si256(), _mm256_sign_epi8(x1, x1), _mm256_sign_epi8(w1, x1));
      acc0[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d0), _mm256_set1_ps(sx[t * lds + b]), acc0[t]);
      acc1[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d1), _mm256_set1_ps(sx[t * lds + b + 1]), acc1[t]);
    }
  }
  if (b < nb) {
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + b * 32));
    for (size_t t = 0; t < NT; ++t) {
      const __m256i x0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(qx + t * ldq + b * 32));
      const __m256i d0 = QDOT(_mm256_setzero_si256(), _mm256_sign_epi8(x0, x0), _mm256_sign_epi8(w0, x0));
      acc0[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d0), _mm256_set1_ps(sx[t * lds + b]), acc0[t]);
    }
  }
  for (size_t t = 0; t < NT; ++t) out[t] = hsum8(_mm256_add_ps(acc0[t], acc1[t]));
}

void matmul_q8(const int8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy, size_t rows, size_t cols,
               size_t T) {
  for (size_t t = 0; t < T; ++t)
    for (size_t r = 0; r < rows; ++r) Y[t * ldy + r] = 0.f;
  const size_t lds = a.ldq / 32;
  for (size_t c0 = 0; c0 < cols; c0 += kChunk) {  // the same chunks as matvec_q8
    const size_t n = cols - c0 < kChunk ? cols - c0 : kChunk;
    for (size_t t0 = 0; t0 < T; t0 += kTokenTile) {
      const size_t t1 = T - t0 < kTokenTile ? T : t0 + kTokenTile;
      for (size_t r = 0; r < rows; ++r) {
        const int8_t* w = W + r * cols + c0;
        for (size_t t = t0; t < t1; t += 4) {  // four tokens per pass over the row's chunk
          float d[4];
          const int8_t* qx = a.q + t * a.ldq + c0;
          const float* sx = a.s + t * lds + c0 / 32;
          const size_t m = t1 - t < 4 ? t1 - t : 4;
          switch (m) {
            case 4: q8_row_dot_tokens<4>(w, qx, a.ldq, sx, lds, n / 32, d); break;
            case 3: q8_row_dot_tokens<3>(w, qx, a.ldq, sx, lds, n / 32, d); break;
            case 2: q8_row_dot_tokens<2>(w, qx, a.ldq, sx, lds, n / 32, d); break;
            default: q8_row_dot_tokens<1>(w, qx, a.ldq, sx, lds, n / 32, d); break;
          }
          for (size_t i = 0; i < m; ++i) Y[(t + i) * ldy + r] += d[i] * scales[r];
        }
      }
    }
  }
}

void matmul_q4(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y, size_t ldy,
               size_t rows, size_t cols, size_t T) {
  const size_t groups = cols / group, bpg = group / 32, lds = a.ldq / 32;
  for (size_t t = 0; t < T; ++t)
    for (size_t r = 0; r < rows; ++r) Y[t * ldy + r] = 0.f;
  for (size_t c0 = 0; c0 < cols; c0 += kChunk) {
    const size_t n = cols - c0 < kChunk ? cols - c0 : kChunk;
    const size_t g0 = c0 / group, ng = n / group;
    for (size_t t0 = 0; t0 < T; t0 += kTokenTile) {
      const size_t t1 = T - t0 < kTokenTile ? T : t0 + kTokenTile;
      for (size_t r = 0; r < rows; ++r)
        for (size_t t = t0; t < t1; ++t)
          Y[t * ldy + r] += q4_row_dot(W + r * (cols / 2) + c0 / 2, scales + r * groups + g0, a.q + t * a.ldq + c0,
                                       a.s + t * lds + c0 / 32, a.corr + t * a.ldc + g0, ng, bpg);
    }
  }
}

}  // namespace QSUFFIX
}  // namespace kernels
}  // namespace rill
