// The int4 and int8 products over the 16-row interleaved layouts (kernels.h, q4x16_value, q8x16_value)
// with float activations,
// written once on GCC vector extensions: 16 lanes, one per row, lowered to two AVX2 or four NEON
// vectors by the including file's flags. Included by kernels_avx2.cc and kernels_neon.cc, each of
// which defines matmul_q4x16__<isa> on q4x16_product.
//
// Per row group, token and scale group: part = sum_c w[c] x[c] in column order (one multiply and one
// add per column, no reassociation), then acc += part * scale. Every token takes the same sequence
// whatever the tile, so T tokens at once give the bits of T single tokens.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/kernels.h"

namespace rill {
namespace kernels {
namespace {

typedef float F32x16 __attribute__((vector_size(64)));
typedef int32_t I32x16 __attribute__((vector_size(64)));

// NT tokens through one row group: W [8 cols] bytes, S its scales [groups, 16]; Y rows ldy apart.
template <size_t NT>
inline void q4x16_tile(const uint8_t* W, const uint16_t* S, size_t cols, size_t group, const float* X, size_t ldx,
                       float* Y, size_t ldy) {
  const size_t groups = cols / group;
  F32x16 acc[NT];
  for (size_t t = 0; t < NT; ++t) acc[t] = F32x16{};
  for (size_t g = 0; g < groups; ++g) {
    F32x16 part[NT];
    for (size_t t = 0; t < NT; ++t) part[t] = F32x16{};
    for (size_t k = g * group / 8; k < (g + 1) * group / 8; ++k) {
      I32x16 w;
      std::memcpy(&w, W + k * 64, 64);  // lane l: 4 bytes of row l, columns 8k..8k+3 low, 8k+4..8k+7 high
      for (int j = 0; j < 4; ++j) {
        const F32x16 lo = __builtin_convertvector(((w >> (8 * j)) & 15) - 8, F32x16);
        const F32x16 hi = __builtin_convertvector(((w >> (8 * j + 4)) & 15) - 8, F32x16);
        for (size_t t = 0; t < NT; ++t) {
          const float* x = X + t * ldx + 8 * k + j;
          part[t] = part[t] + lo * x[0];
          part[t] = part[t] + hi * x[4];
        }
      }
    }
    F32x16 sc;
    for (int l = 0; l < 16; ++l) sc[l] = f16_to_f32(S[g * 16 + l]);
    for (size_t t = 0; t < NT; ++t) acc[t] = acc[t] + part[t] * sc;
  }
  for (size_t t = 0; t < NT; ++t) std::memcpy(Y + t * ldy, &acc[t], 64);
}

// int8 (q8x16_value): one sum per row over every column in order, then times the row's scale.
template <size_t NT>
inline void q8x16_tile(const uint8_t* W, const float* S, size_t cols, const float* X, size_t ldx, float* Y,
                       size_t ldy) {
  F32x16 acc[NT];
  for (size_t t = 0; t < NT; ++t) acc[t] = F32x16{};
  for (size_t k = 0; k < cols / 4; ++k) {
    I32x16 w;
    std::memcpy(&w, W + k * 64, 64);  // lane l: row l's columns 4k..4k+3, each + 128
    for (int j = 0; j < 4; ++j) {
      const F32x16 v = __builtin_convertvector(((w >> (8 * j)) & 255) - 128, F32x16);
      for (size_t t = 0; t < NT; ++t) acc[t] = acc[t] + v * X[t * ldx + 4 * k + j];
    }
  }
  F32x16 sc;
  std::memcpy(&sc, S, 64);
  for (size_t t = 0; t < NT; ++t) {
    const F32x16 y = acc[t] * sc;
    std::memcpy(Y + t * ldy, &y, 64);
  }
}

inline void q8x16_product(const uint8_t* W, const float* scales, const float* X, size_t ldx, float* Y, size_t ldy,
                          size_t rows, size_t cols, size_t T) {
  for (size_t r = 0; r < rows; r += 16) {
    const uint8_t* w = W + r * cols;
    size_t t = 0;
    for (; t + 4 <= T; t += 4) q8x16_tile<4>(w, scales + r, cols, X + t * ldx, ldx, Y + t * ldy + r, ldy);
    switch (T - t) {
      case 3: q8x16_tile<3>(w, scales + r, cols, X + t * ldx, ldx, Y + t * ldy + r, ldy); break;
      case 2: q8x16_tile<2>(w, scales + r, cols, X + t * ldx, ldx, Y + t * ldy + r, ldy); break;
      case 1: q8x16_tile<1>(w, scales + r, cols, X + t * ldx, ldx, Y + t * ldy + r, ldy); break;
      default: break;
    }
  }
}

// Row groups outermost (a group's bytes stay in cache for every token tile), tiles of 4 tokens.
inline void q4x16_product(const uint8_t* W, const uint16_t* scales, size_t group, const float* X, size_t ldx,
                          float* Y, size_t ldy, size_t rows, size_t cols, size_t T) {
  const size_t groups = cols / group;
  for (size_t r = 0; r < rows; r += 16) {
    const uint8_t* w = W + r * (cols / 2);
    const uint16_t* s = scales + r * groups;
    size_t t = 0;
    for (; t + 4 <= T; t += 4) q4x16_tile<4>(w, s, cols, group, X + t * ldx, ldx, Y + t * ldy + r, ldy);
    switch (T - t) {
      case 3: q4x16_tile<3>(w, s, cols, group, X + t * ldx, ldx, Y + t * ldy + r, ldy); break;
      case 2: q4x16_tile<2>(w, s, cols, group, X + t * ldx, ldx, Y + t * ldy + r, ldy); break;
      case 1: q4x16_tile<1>(w, s, cols, group, X + t * ldx, ldx, Y + t * ldy + r, ldy); break;
      default: break;
    }
  }
}

}  // namespace
}  // namespace kernels
}  // namespace rill
