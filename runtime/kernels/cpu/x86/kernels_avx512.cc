// AVX-512 kernels (Ice Lake, Sapphire Rapids, Zen 4 and later): the quantized products with VNNI on
// 512-bit vectors, one vpdpbusd per 64 products, and the scans and row ops (scans.inl, rowops.inl) 16
// floats at a time. Compiled with -mavx512f -mavx512vl -mavx512bw -mavx512vnni on this file only;
// called only when the CPU reports those features.
//
// Activations are quantized per 32-element block as in qmatvec.inl (x[b*32+j] ~ sx[b] q[b*32+j]) and
// read two blocks (64 columns) at a time: lanes 0-7 of a dot product hold block b, lanes 8-15 block
// b+1. vpdpbusd multiplies an unsigned by a signed operand, so each kernel starts the integer sum at
// a correction that makes it exact:
//   q8 (signed weights w):   d = -128 sum4(w) + dot(q ^ 0x80, w)      = dot(q, w)
//   q4 (nibbles u = w + 8):  d =   -8 sum4(q) + dot(u, q)             = dot(w, q)
// The first correction depends on the weights only and is computed once per row of a tile; the second
// depends on the activations only and is computed once per token, when they are quantized. Per (row, token, block pair)
// the float work is one conversion and one FMA: acc += float(d) * scale, the scale being
// [sx[b] x 8, sx[b+1] x 8] (times the weight scales for q4). One accumulator per (row, token), summed
// over block pairs in column order and reduced once: the matrix-vector kernels are the one-token case
// of the same tile, so matvec and matmul give the same bits.

// GCC 12's avx512fintrin.h builds undefined vectors as `__Y = __Y`, which -Wuninitialized flags in
// every caller of a cast or permute intrinsic.
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // GCC's name only
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cmath>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/token_tiles.h"
#include "kernels/ref/kernels_ref.h"

#define QDOT _mm256_dpbusd_epi32
#define QSUFFIX q_avx512vnni
#include "kernels/cpu/x86/qmatvec.inl"  // quantize_blocks / prepare_act
#undef QDOT
#undef QSUFFIX

namespace rill {
namespace kernels {
namespace {

// Rows and tokens of one tile: MR x NT accumulators (16 zmm) stay in registers while the row tile's
// weights (MR rows, from L1 after the first token tile) meet every token tile. int4 rows cost more to
// unpack than int8 ones, so their several-token tiles take 2 rows x 8 tokens (64 tokens: 56 against 53
// GMAC/s at 4 x 4); int8 keeps 4 x 4 (its per-token work is the larger).
constexpr int kMR = 4, kNT = 4, kQ4MR = 2, kQ4NT = 8;
// Weights are prefetched this many rows (four row tiles) ahead into L1: with the hardware prefetcher
// alone a one-token q8 product read 6-10 GB/s on a Sapphire Rapids VM (17 GB/s probe), with this
// 12-14 GB/s. 32 or 64 rows ahead, or into L2 only, were no better; non-temporal was 3x worse.
constexpr size_t kAhead = 16;

// Lanes 0-7 from element 0 of a 128-bit vector, lanes 8-15 from element 1.
inline __m512 pair_lanes(__m128 v) {
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                               _mm512_castps128_ps512(v));
}

// The scales of token blocks b, b+1 (only b in the tail: the next block is padding, never read).
inline __m512 act_scales(const float* s, bool tail) {
  return tail ? _mm512_set1_ps(s[0]) : pair_lanes(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(s))));
}

struct Q8 {
  const int8_t* W;
  const float* scales;  // per row
  size_t cols;
};
struct Q4 {
  const uint8_t* W;
  const uint16_t* scales;  // f16, per row and group
  size_t cols, group;
};

// One tile: rows r0..r0+MR-1, tokens t0..t0+NT-1, every column.
template <int MR, int NT>
inline void tile(const Q8& m, const QAct& a, size_t r0, size_t t0, float* Y, size_t ldy) {
  const size_t nb = m.cols / 32, lds = a.ldq / 32;
  const __m512i zero = _mm512_setzero_si512(), c80 = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 acc[MR][NT];
  for (int r = 0; r < MR; ++r)
    for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_setzero_ps();
  for (size_t b = 0; b < nb; b += 2) {
    const bool tail = b + 1 == nb;  // one block left: the upper half loads as zeros
    __m512i w[MR], init[MR];
    for (int r = 0; r < MR; ++r) {
      const int8_t* p = m.W + (r0 + r) * m.cols + b * 32;
      _mm_prefetch(reinterpret_cast<const char*>(p + kAhead * m.cols), _MM_HINT_T0);
      w[r] = tail ? _mm512_maskz_loadu_epi8(0xFFFFFFFFull, p) : _mm512_loadu_si512(p);
      init[r] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, c80, w[r]));  // -128 sum4(w)
    }
    for (int t = 0; t < NT; ++t) {
      const int8_t* q = a.q + (t0 + t) * a.ldq + b * 32;
      const __m512i x = tail ? _mm512_maskz_loadu_epi8(0xFFFFFFFFull, q) : _mm512_load_si512(q);
      const __m512i xu = _mm512_xor_si512(x, c80);  // q + 128 as unsigned
      const __m512 s = act_scales(a.s + (t0 + t) * lds + b, tail);
      for (int r = 0; r < MR; ++r)
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(init[r], xu, w[r])), s, acc[r][t]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int t = 0; t < NT; ++t) Y[(t0 + t) * ldy + r0 + r] = _mm512_reduce_add_ps(acc[r][t]) * m.scales[r0 + r];
}

template <int MR, int NT>
inline void tile(const Q4& m, const QAct& a, size_t r0, size_t t0, float* Y, size_t ldy) {
  const size_t nb = m.cols / 32, lds = a.ldq / 32, groups = m.cols / m.group, bpg = m.group / 32;
  const __m512i low = _mm512_set1_epi8(0x0F);
  const int32_t* corr = reinterpret_cast<const int32_t*>(a.corr);
  const __m512i first = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  __m512 acc[MR][NT];
  for (int r = 0; r < MR; ++r)
    for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_setzero_ps();
  // Groups of 32 (one scale per block): each row's scales of 16 blocks are converted at once, and a
  // block pair's two are permuted out of them (idx: lanes 0-7 the pair's first block, 8-15 its second).
  __m512 sw16[MR];
  __m512i idx = first;
  for (size_t b = 0; b < nb; b += 2) {
    const bool tail = b + 1 == nb;
    if (bpg == 1 && b % 16 == 0) {
      const __mmask16 k = nb - b >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (nb - b)) - 1);
      for (int r = 0; r < MR; ++r)
        sw16[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, m.scales + (r0 + r) * groups + b));
      idx = first;
    }
    __m512i u[MR];
    __m512 sw[MR];
    for (int r = 0; r < MR; ++r) {
      // Block b's 16 bytes hold columns 0-15 in the low nibbles and 16-31 in the high ones: 128-bit
      // lanes [b, b, b+1, b+1], the odd lanes shifted down by 4, give the columns in order.
      const uint8_t* p = m.W + (r0 + r) * (m.cols / 2) + b * 16;
      _mm_prefetch(reinterpret_cast<const char*>(p + kAhead * (m.cols / 2)), _MM_HINT_T0);
      const __m256i v = tail ? _mm256_maskz_loadu_epi8(0xFFFFu, p) : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      __m512i z = _mm512_zextsi256_si512(v);
      z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(1, 1, 0, 0));
      z = _mm512_mask_srli_epi16(z, 0xFF00FF00u, z, 4);
      u[r] = _mm512_and_si512(z, low);
      // In the tail the second block's lanes multiply zeros; its scale lane (a masked-off zero) is finite.
      sw[r] = bpg == 1 ? _mm512_permutexvar_ps(idx, sw16[r])
                       : _mm512_set1_ps(_cvtsh_ss(m.scales[(r0 + r) * groups + b / bpg]));
    }
    idx = _mm512_add_epi32(idx, _mm512_set1_epi32(2));
    for (int t = 0; t < NT; ++t) {
      const int8_t* q = a.q + (t0 + t) * a.ldq + b * 32;
      const __m512i x = tail ? _mm512_maskz_loadu_epi8(0xFFFFFFFFull, q) : _mm512_load_si512(q);
      const __m512i init = _mm512_load_si512(corr + (t0 + t) * a.ldc + b * 8);  // -8 sum4(q), zero past cols
      const __m512 s = act_scales(a.s + (t0 + t) * lds + b, tail);
      for (int r = 0; r < MR; ++r)
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(init, u[r], x)), _mm512_mul_ps(s, sw[r]),
                                    acc[r][t]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int t = 0; t < NT; ++t) Y[(t0 + t) * ldy + r0 + r] = _mm512_reduce_add_ps(acc[r][t]);
}

// Token tiles of NT over one row tile of MR rows; the last tile takes what is left.
template <int MR, int NT, typename M>
inline void tokens(const M& m, const QAct& a, size_t r0, size_t T, float* Y, size_t ldy) {
  token_tiles<NT>(T, [&](auto nt, size_t t) { tile<MR, decltype(nt)::value>(m, a, r0, t, Y, ldy); });
}

// Row tiles outermost: a tile's weights are read from memory once and from L1 for every later token tile.
template <int MR, int NT, typename M>
void product(const M& m, const QAct& a, float* Y, size_t ldy, size_t rows, size_t T) {
  static_assert(NT <= 8 && MR <= 4, "tails are dispatched up to 7 tokens and 3 rows");
  size_t r = 0;
  for (; r + MR <= rows; r += MR) tokens<MR, NT>(m, a, r, T, Y, ldy);
  switch (rows - r) {
    case 3: tokens<3, NT>(m, a, r, T, Y, ldy); break;
    case 2: tokens<2, NT>(m, a, r, T, Y, ldy); break;
    case 1: tokens<1, NT>(m, a, r, T, Y, ldy); break;
    default: break;
  }
}

// ---- the 16-row interleaved layouts (kernels.h, q4x16_value / q8x16_value)
//
// The 16 lanes of a vector are 16 rows, and each 4-byte lane meets 4 activation bytes broadcast to
// every lane. int4: a 64-byte load holds 8 columns of each row, split into two vectors of 4 (low and
// high nibbles); int8: weights stored + 128 are vpdpbusd's unsigned operand as loaded, 4 columns per
// load. A token's integer sum over a 32-column block starts at -8 sum(q) or -128 sum(q) (the block's
// sum from prepare_act) and is exact; per (block, token) the float work is one conversion and one FMA
// for all 16 rows, against one per row in the row layout (int8 rows' scales multiply once at the
// end). Results land as 16 consecutive floats: no reduction. Weights of one row group stay in L1/L2
// across token tiles of kX16NT.
constexpr size_t kX16NT = 8;
// Bytes of weights prefetched ahead of the load. One token (decode, bound by the weight stream): 256
// against 1024 and none, alternating on this machine (Mamba-130m q8 decode, one thread): 101-108 /
// 89-91 / 101-125 tok/s; RWKV-7 q4 no different. Several tokens (prefill, many streams): a 16-row
// group's 512-byte column block then takes 8 times as long to compute, and 256 bytes ahead no longer
// covers DRAM's latency: `rill_kernel_bench 50280 768` (a 130m model's head, out of cache), q8 at
// 8 / 16 tokens, GMAC/s: 256 ahead 127 / 115, 1024 140 / 138, 2048 154 / 156, 4096 161 / 159;
// 16 streams of Mamba 130m q8 565 -> 621 steps/s, RWKV-7 0.1B 577 -> 632 (2048; three rounds
// alternating, one thread), prefill 512 +4 % on both.
constexpr size_t kX16Ahead = 256, kX16AheadTokens = 2048;

template <int NT, bool Int4>
inline void tile_x16(const uint8_t* W, const void* S, size_t cols, size_t group, const QAct& a, size_t t0, float* Y,
                     size_t ldy) {
  const size_t nb = cols / 32, lds = a.ldq / 32, bpg = Int4 ? group / 32 : nb;
  const size_t ahead = NT > 1 ? kX16AheadTokens : kX16Ahead;
  const __m512i low = _mm512_set1_epi8(0x0F);
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  __m512 sw = _mm512_setzero_ps();  // int4: the current group's scales of the 16 rows (set at b = 0)
  for (size_t b = 0; b < nb; ++b) {
    __m512i u[8];  // columns 4k..4k+3 of the 16 rows
    if (Int4) {
      if (b % bpg == 0)
        sw = _mm512_cvtph_ps(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(S) + (b / bpg) * 16)));
      const uint8_t* p = W + b * 256;
      for (int k = 0; k < 4; ++k) {
        _mm_prefetch(reinterpret_cast<const char*>(p + 64 * k + ahead), _MM_HINT_T0);
        const __m512i v = _mm512_loadu_si512(p + 64 * k);
        u[2 * k] = _mm512_and_si512(v, low);                            // columns 8k..8k+3
        u[2 * k + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);  // columns 8k+4..8k+7
      }
    } else {
      const uint8_t* p = W + b * 512;
      for (int k = 0; k < 8; ++k) {
        _mm_prefetch(reinterpret_cast<const char*>(p + 64 * k + ahead), _MM_HINT_T0);
        u[k] = _mm512_loadu_si512(p + 64 * k);
      }
    }
    for (int t = 0; t < NT; ++t) {
      const int32_t* q = reinterpret_cast<const int32_t*>(a.q + (t0 + t) * a.ldq + b * 32);
      const size_t blk = (t0 + t) * lds + b;
      __m512i d0 = _mm512_set1_epi32((Int4 ? -8 : -128) * a.sum[blk]), d1 = _mm512_setzero_si512();
      for (int k = 0; k < 8; k += 2) {
        d0 = _mm512_dpbusd_epi32(d0, u[k], _mm512_set1_epi32(q[k]));
        d1 = _mm512_dpbusd_epi32(d1, u[k + 1], _mm512_set1_epi32(q[k + 1]));
      }
      const __m512 s = _mm512_set1_ps(a.s[blk]);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(d0, d1)), Int4 ? _mm512_mul_ps(sw, s) : s, acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t)  // int8: the rows' scales once at the end
    _mm512_storeu_ps(Y + (t0 + t) * ldy,
                     Int4 ? acc[t] : _mm512_mul_ps(acc[t], _mm512_loadu_ps(static_cast<const float*>(S))));
}

// ---- float products (f32 and f16 weights)
//
// A tile of 16 accumulators, one per (row, token): 16 rows x 1 token for a matrix-vector product,
// 4 rows x 4 tokens for several tokens. Each accumulator sums its row's 16-column slices in order
// (the last slice masked), then the 16 are reduced together: lane i of reduce16 is accumulator i
// summed by the same tree whatever the tile's shape (lanes l + l+8, then + 4, + 2, + 1), so matvec
// and matmul give the same bits, with one transposing reduction per 16 results instead of one
// horizontal sum each (which dominated the products with 32-128 columns: RWKV-7's LoRAs, Mamba's
// dt_proj).

inline __m512 reduce16(const __m512* v) {
  __m512 a[8], b[4], c[2];
  for (int k = 0; k < 8; ++k)  // lanes 0-7: v[2k] l + l+8; lanes 8-15: v[2k+1]
    a[k] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  for (int m = 0; m < 4; ++m)  // quarter j: v[4m + j], l + l+4
    b[m] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * m], a[2 * m + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(a[2 * m], a[2 * m + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  for (int q = 0; q < 2; ++q)  // quarter j: v[8q + j] (lanes 0-1), v[8q + 4 + j] (lanes 2-3), l + l+2
    c[q] = _mm512_add_ps(
        _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(b[2 * q]), _mm512_castps_pd(b[2 * q + 1]))),
        _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(b[2 * q]), _mm512_castps_pd(b[2 * q + 1]))));
  // lane 4j + s: v[4s + j], l + l+1; then lane i gets v[i]
  const __m512 d = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), d);
}

struct F32W {
  const float* W;
  size_t cols;
  __m512 load(size_t r, size_t c) const { return _mm512_loadu_ps(W + r * cols + c); }
  __m512 load_tail(size_t r, size_t c, __mmask16 k) const { return _mm512_maskz_loadu_ps(k, W + r * cols + c); }
  size_t row_bytes() const { return cols * 4; }
};
struct F16W {
  const uint16_t* W;
  size_t cols;
  __m512 load(size_t r, size_t c) const {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(W + r * cols + c)));
  }
  __m512 load_tail(size_t r, size_t c, __mmask16 k) const {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, W + r * cols + c));
  }
  size_t row_bytes() const { return cols * 2; }
};

// Rows r0.. and tokens t0.. past the ends repeat the last row / token (valid memory); their results
// are dropped.
template <int MR, int NT, class L>
void ftile(const L& w, const float* X, size_t ldx, float* Y, size_t ldy, size_t r0, size_t rows, size_t t0,
           size_t T) {
  static_assert(MR * NT == 16, "one reduce16 per tile");
  size_t row[MR], tok[NT];
  for (int r = 0; r < MR; ++r) row[r] = r0 + r < rows ? r0 + r : rows - 1;
  for (int t = 0; t < NT; ++t) tok[t] = t0 + t < T ? t0 + t : T - 1;
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
  const size_t cols = w.cols;
  const char* ahead = reinterpret_cast<const char*>(w.W) + (row[0] + kAhead) * w.row_bytes();
  size_t c = 0;
  for (; c + 16 <= cols; c += 16) {
    __m512 x[NT];
    for (int t = 0; t < NT; ++t) x[t] = _mm512_loadu_ps(X + tok[t] * ldx + c);
    for (int r = 0; r < MR; ++r) {
      if (NT == 1 && c % 64 == 0) _mm_prefetch(ahead + r * w.row_bytes() + c * sizeof(*w.W), _MM_HINT_T0);
      const __m512 wv = w.load(row[r], c);
      for (int t = 0; t < NT; ++t) acc[r * NT + t] = _mm512_fmadd_ps(wv, x[t], acc[r * NT + t]);
    }
  }
  if (c < cols) {
    const __mmask16 k = static_cast<__mmask16>((1u << (cols - c)) - 1);
    __m512 x[NT];
    for (int t = 0; t < NT; ++t) x[t] = _mm512_maskz_loadu_ps(k, X + tok[t] * ldx + c);
    for (int r = 0; r < MR; ++r) {
      const __m512 wv = w.load_tail(row[r], c, k);
      for (int t = 0; t < NT; ++t) acc[r * NT + t] = _mm512_fmadd_ps(wv, x[t], acc[r * NT + t]);
    }
  }
  alignas(64) float out[16];
  _mm512_store_ps(out, reduce16(acc));
  for (int r = 0; r < MR; ++r)
    for (int t = 0; t < NT; ++t)
      if (r0 + r < rows && t0 + t < T) Y[(t0 + t) * ldy + r0 + r] = out[r * NT + t];
}

template <class L>
void fproduct(const L& w, const float* X, size_t ldx, float* Y, size_t ldy, size_t rows, size_t T) {
  if (rows == 0 || T == 0) return;
  if (T == 1) {
    for (size_t r = 0; r < rows; r += 16) ftile<16, 1>(w, X, ldx, Y, ldy, r, rows, 0, 1);
    return;
  }
  for (size_t r = 0; r < rows; r += 4)
    for (size_t t = 0; t < T; t += 4) ftile<4, 4>(w, X, ldx, Y, ldy, r, rows, t, T);
}

struct V16 {
  using R = __m512;
  static constexpr size_t W = 16;
  static R load(const float* p) { return _mm512_loadu_ps(p); }
  static R load_h(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static void store(float* p, R v) { _mm512_storeu_ps(p, v); }
  static R set1(float v) { return _mm512_set1_ps(v); }
  static R zero() { return _mm512_setzero_ps(); }
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static R fmadd(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R fnmadd(R a, R b, R c) { return _mm512_fnmadd_ps(a, b, c); }
  static float sum(R v) { return _mm512_reduce_add_ps(v); }
  static R sums(const R* v) { return reduce16(v); }  // lane k: sum(v[k]), for W vectors
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  static R div(R a, R b) { return _mm512_div_ps(a, b); }
  static R max(R a, R b) { return _mm512_max_ps(a, b); }
  static R abs(R a) { return _mm512_abs_ps(a); }
  static R neg_select(R x, R a, R b) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), b, a);
  }
  static R exp(R x) {  // exp8 (kernels_avx2.cc) on 16 floats
    x = _mm512_max_ps(_mm512_set1_ps(-87.3f), _mm512_min_ps(_mm512_set1_ps(88.3f), x));
    const R n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), x);
    R p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.f)));
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  }
};
#include "kernels/cpu/scans.inl"
#include "kernels/cpu/rowops.inl"

}  // namespace

void mamba2_ssd__avx512(float* S, const float* x, const float* B, const float* C, size_t ldx, const float* dt,
                        const float* A, const float* D, float* y, size_t T, size_t H, size_t P, size_t N, size_t G,
                        float* work, size_t h0, size_t h1) {
  ssd_scan_v<V16>(S, x, B, C, ldx, dt, A, D, y, T, H, P, N, G, work, h0, h1);
}
void mamba1_scan__avx512(float* s, const float* A, const float* dt, const float* x, const float* B, const float* C,
                         const float* D, const float* z, float* y, size_t E, size_t N, size_t c0, size_t c1) {
  mamba1_scan_v<V16>(s, A, dt, x, B, C, D, z, y, E, N, c0, c1);
}
void s4d_step__avx512(float* s, const float* A, const float* C, const float* D, const float* u, float* y, size_t H,
                      size_t M) {
  s4d_step_v<V16>(s, A, C, D, u, y, H, M);
}
void exp__avx512(float* y, size_t n) { exp_v<V16>(y, n); }
void act__avx512(Act kind, float* y, size_t n) { act_v<V16>(kind, y, n); }
void attend_group__avx512(const void* K, const void* V, bool f16, size_t stride, size_t n, const float* Q, size_t G,
                        size_t D, float scale, float* scores, size_t ldsc, float* Y) {
  attend_group_v<V16>(K, V, f16, stride, n, Q, G, D, scale, scores, ldsc, Y);
}
void conv_silu__avx512(float* hist, const float* w, const float* b, const float* X, size_t ldx, float* Y, size_t T,
                       size_t C, size_t K, bool silu, size_t c0, size_t c1) {
  conv_silu_v<V16>(hist, w, b, X, ldx, Y, T, C, K, silu, c0, c1);
}
void gated_rmsnorm__avx512(float* Y, const float* Z, size_t ldz, const float* w, size_t n, size_t E, size_t G,
                           float eps) {
  gated_rmsnorm_v<V16>(Y, Z, ldz, w, n, E, G, eps);
}
void layernorm__avx512(const float* X, const float* w, const float* b, float* Y, size_t n, size_t d, float eps) {
  layernorm_v<V16>(X, w, b, Y, n, d, eps);
}
void wkv_scan__avx512(float* S, const WkvIo& io, size_t T, size_t H, size_t K, size_t V, bool read_first, float* work,
                      size_t h0, size_t h1) {
  wkv_scan_v<V16>(S, io, T, H, K, V, read_first, work, h0, h1);
}

void matvec_f32__avx512(const float* W, const float* x, float* y, size_t rows, size_t cols) {
  fproduct(F32W{W, cols}, x, 0, y, 0, rows, 1);
}
void matmul_f32__avx512(const float* W, const float* X, size_t ldx, float* Y, size_t ldy, size_t rows, size_t cols,
                        size_t T) {
  fproduct(F32W{W, cols}, X, ldx, Y, ldy, rows, T);
}
void matvec_f16__avx512(const uint16_t* W, const float* x, float* y, size_t rows, size_t cols) {
  fproduct(F16W{W, cols}, x, 0, y, 0, rows, 1);
}
void matmul_f16__avx512(const uint16_t* W, const float* X, size_t ldx, float* Y, size_t ldy, size_t rows,
                        size_t cols, size_t T) {
  fproduct(F16W{W, cols}, X, ldx, Y, ldy, rows, T);
}

void matmul_q8x16__avx512vnni(const uint8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy, size_t rows,
                              size_t cols, size_t T) {
  for (size_t r = 0; r < rows; r += 16)
    token_tiles<kX16NT>(T, [&](auto nt, size_t t) {
      tile_x16<decltype(nt)::value, false>(W + r * cols, scales + r, cols, 0, a, t, Y + r, ldy);
    });
}

void matmul_q4x16__avx512vnni(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y,
                              size_t ldy, size_t rows, size_t cols, size_t T) {
  const size_t groups = cols / group;
  for (size_t r = 0; r < rows; r += 16)
    token_tiles<kX16NT>(T, [&](auto nt, size_t t) {
      tile_x16<decltype(nt)::value, true>(W + r * (cols / 2), scales + r * groups, cols, group, a, t, Y + r, ldy);
    });
}

// For int4 weights, each 4-column lane's correction -8 sum4(q) is computed here once per token (the
// tile starts its integer sums there), as int32 [T, ldq / 4] in the corr region, zero past `cols`.
void prepare_act__avx512vnni(const float* X, size_t ldx, size_t T, size_t cols, size_t group, unsigned char* work,
                             QAct* a, size_t t0, size_t t1) {
  q_avx512vnni::prepare_act(X, ldx, T, cols, 0, work, a, t0, t1);
  if (!group) return;
  const ActLayout L = act_layout(T, cols);
  int32_t* corr = reinterpret_cast<int32_t*>(work + L.corr);
  const __m512i zero = _mm512_setzero_si512(), c08 = _mm512_set1_epi8(8);
  for (size_t t = t0; t < t1; ++t)
    for (size_t c = 0; c < L.ldq; c += 64) {
      const size_t valid = cols > c ? (cols - c < 64 ? cols - c : 64) : 0;
      const __mmask64 k = valid == 64 ? ~__mmask64(0) : ((__mmask64(1) << valid) - 1);
      const __m512i x = _mm512_maskz_loadu_epi8(k, a->q + t * L.ldq + c);
      _mm512_store_si512(corr + t * (L.ldq / 4) + c / 4, _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, c08, x)));
    }
  a->corr = reinterpret_cast<const float*>(corr);  // int32 values; QAct's field is shared with other tables
  a->ldc = L.ldq / 4;
}
void matvec_q8__avx512vnni(const int8_t* W, const float* scales, const QAct& a, float* y, size_t rows, size_t cols) {
  product<kMR, kNT>(Q8{W, scales, cols}, a, y, 0, rows, 1);
}
void matvec_q4__avx512vnni(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* y,
                           size_t rows, size_t cols) {
  product<kMR, kNT>(Q4{W, scales, cols, group}, a, y, 0, rows, 1);
}
void matmul_q8__avx512vnni(const int8_t* W, const float* scales, const QAct& a, float* Y, size_t ldy, size_t rows,
                           size_t cols, size_t T) {
  product<kMR, kNT>(Q8{W, scales, cols}, a, Y, ldy, rows, T);
}
void matmul_q4__avx512vnni(const uint8_t* W, const uint16_t* scales, size_t group, const QAct& a, float* Y,
                           size_t ldy, size_t rows, size_t cols, size_t T) {
  product<kQ4MR, kQ4NT>(Q4{W, scales, cols, group}, a, Y, ldy, rows, T);
}

}  // namespace kernels
}  // namespace rill
