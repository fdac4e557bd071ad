// An independent reading of rill's quantized tensors, written from the file format's byte definitions
// (schemas/README.md, "Quantized tensors") and nothing else: it shares no code with the converter's
// quantize_matrix or the kernels' accessors (kernels.h q4_value, q8x16_value, ...), so a layout
// mistake made consistently in those two cannot agree with it.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace rill_test {
namespace oracle {

// IEEE binary16 -> double, from the bit fields.
inline double half(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1F, frac = h & 0x3FF;
  double v;
  if (exp == 0) v = frac / 1024.0 / 16384.0;  // subnormal: frac * 2^-24
  else if (exp == 31) v = frac ? 0.0 / 0.0 : 1.0 / 0.0;
  else {
    v = 1.0 + frac / 1024.0;
    for (int e = exp - 15; e > 0; --e) v *= 2;
    for (int e = exp - 15; e < 0; ++e) v /= 2;
  }
  return sign ? -v : v;
}

// The integer stored for element (r, c) and the scale it is multiplied by.
struct Element {
  int q;
  double scale;
};

// int8, one f32 scale per row. Row layout (PerRow): row r's C bytes at r * C, signed.
// 16-row layout (PerRowRows16): rows 16i..16i+15 take bytes [16 C i, 16 C (i + 1)); within them
// columns 4k..4k+3 take the 64 bytes at 64 k, byte 4 l + j holding row 16i+l's column 4k+j plus 128
// (unsigned); the last R % 16 rows follow row by row, signed, as in the row layout.
inline Element q8(const uint8_t* data, const uint8_t* scales, size_t R, size_t C, size_t r, size_t c, bool rows16) {
  float s;
  std::memcpy(&s, scales + 4 * r, 4);
  const size_t full = R / 16 * 16;
  if (!rows16 || r >= full) return {static_cast<int8_t>(data[r * C + c]), s};
  const size_t i = r / 16, l = r % 16, k = c / 4, j = c % 4;
  return {static_cast<int>(data[16 * C * i + 64 * k + 4 * l + j]) - 128, s};
}

// int4 in groups of `group` columns, one f16 scale per group, each value stored as q + 8 in a nibble.
// Row layout (Grouped): row r's C / 2 bytes at r * C / 2; in each 32-column block (16 bytes), column j
// of the block in the low nibble of byte j, column j + 16 in the high nibble of byte j. Scales row by
// row: row r's group g at r * (C / group) + g.
// 16-row layout (GroupedRows16): rows 16i..16i+15 take bytes [8 C i, 8 C (i + 1)); columns 8k..8k+7
// take the 64 bytes at 64 k, byte 4 l + j holding row 16i+l's column 8k+j in its low nibble and column
// 8k+4+j in its high nibble. Their scales: row r's group g at ((r / 16) groups + g) 16 + r % 16. The
// last R % 16 rows follow in the row layout, data and scales, where the interleaved rows end.
inline Element q4(const uint8_t* data, const uint8_t* scales, size_t R, size_t C, size_t group, size_t r, size_t c,
                  bool rows16) {
  const size_t groups = C / group, full = R / 16 * 16;
  uint16_t sh;
  size_t si;
  int nib;
  if (!rows16 || r >= full) {
    const uint8_t byte = data[r * (C / 2) + (c / 32) * 16 + (c % 16)];
    nib = (c % 32) < 16 ? (byte & 0xF) : (byte >> 4);
    si = r * groups + c / group;
  } else {
    const size_t i = r / 16, l = r % 16, k = c / 8, j = c % 4;
    const uint8_t byte = data[8 * C * i + 64 * k + 4 * l + j];
    nib = (c % 8) < 4 ? (byte & 0xF) : (byte >> 4);
    si = ((r / 16) * groups + c / group) * 16 + r % 16;
  }
  std::memcpy(&sh, scales + 2 * si, 2);
  return {nib - 8, half(sh)};
}

// Every element's value, scale * q, [R, C] row-major.
inline std::vector<double> decode(int bits, const std::vector<uint8_t>& data, const std::vector<uint8_t>& scales,
                                  size_t R, size_t C, size_t group, bool rows16) {
  std::vector<double> out(R * C);
  for (size_t r = 0; r < R; ++r)
    for (size_t c = 0; c < C; ++c) {
      const Element e = bits == 8 ? q8(data.data(), scales.data(), R, C, r, c, rows16)
                                  : q4(data.data(), scales.data(), R, C, group, r, c, rows16);
      out[r * C + c] = e.q * e.scale;
    }
  return out;
}

}  // namespace oracle
}  // namespace rill_test
