// The converter's quantized tensors, read back by the test's own decoder of the format's bytes
// (tests/quant_oracle.h, schemas/README.md "Quantized tensors"): every element lies within half a
// quantization step of the weight it came from (or, in int4, sits at an end of the range the weight
// lies beyond), in both layouts, for every group size, with and without a tail of rows outside the
// 16-row blocks; the two layouts hold the same values; and each int4 group's squared error is at most
// that of the two plain scales, absmax / 7 and llama.cpp Q4_0's m / -8 (m: the value of largest
// magnitude), each rounded to f16 as stored.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "content.h"
#include "kernels/kernels.h"
#include "quant_oracle.h"
#include "test_util.h"

using namespace rill_test;

TEST_SUITE("format") {
  TEST_CASE("quantized tensors decode, by the format's own definition, to within half a step of the weights") {
    std::mt19937 rng(29);
    std::normal_distribution<float> nd;
    const size_t shapes[][2] = {{16, 32}, {21, 64}, {35, 256}, {64, 128}, {3, 96}, {48, 384}};
    for (const auto& sh : shapes) {
      const size_t R = sh[0], C = sh[1];
      std::vector<float> W(R * C);
      for (float& w : W) w = nd(rng) * ((rng() % 64 == 0) ? 8.f : 1.f);  // some outliers
      for (int bits : {8, 4}) {
        for (uint32_t group : {32u, 64u, 128u}) {
          if ((bits == 8 && group != 32) || C % group != 0) continue;
          const uint32_t g = bits == 8 ? static_cast<uint32_t>(C) : group;
          CAPTURE(R);
          CAPTURE(C);
          CAPTURE(bits);
          CAPTURE(group);
          std::vector<uint8_t> rows, rscales, x16, xscales;
          rill::convert::quantize_matrix(W, R, C, bits, g, false, &rows, &rscales);
          rill::convert::quantize_matrix(W, R, C, bits, g, true, &x16, &xscales);
          REQUIRE(rows.size() == R * C * bits / 8);
          REQUIRE(x16.size() == rows.size());
          REQUIRE(rscales.size() == (bits == 8 ? R * 4 : R * (C / group) * 2));
          REQUIRE(xscales.size() == rscales.size());
          const std::vector<double> a = oracle::decode(bits, rows, rscales, R, C, g, false);
          const std::vector<double> b = oracle::decode(bits, x16, xscales, R, C, g, true);
          for (size_t r = 0; r < R; ++r)
            for (size_t c = 0; c < C; ++c) {
              const oracle::Element e = bits == 8 ? oracle::q8(rows.data(), rscales.data(), R, C, r, c, false)
                                                  : oracle::q4(rows.data(), rscales.data(), R, C, g, r, c, false);
              const double w = W[r * C + c];
              REQUIRE(e.q >= (bits == 8 ? -127 : -8));
              REQUIRE(e.q <= (bits == 8 ? 127 : 7));
              // Within half a step, or an int4 value at the end of the range that the weight lies beyond.
              const double v = e.scale != 0 ? w / e.scale : 0;
              const bool clipped = bits == 4 && ((e.q == 7 && v > 7) || (e.q == -8 && v < -8));
              const double tol = 0.5 * std::fabs(e.scale) * (1 + 1e-6) + 1e-12;
              REQUIRE_MESSAGE((clipped || std::fabs(a[r * C + c] - w) <= tol),
                              "row " << r << " col " << c << ": " << a[r * C + c] << " from " << w << " (scale "
                                     << e.scale << ")");
              REQUIRE_MESSAGE(b[r * C + c] == a[r * C + c], "16-row layout differs at row " << r << " col " << c);
            }
          if (bits == 4)
            for (size_t r = 0; r < R; ++r)
              for (size_t g0 = 0; g0 < C; g0 += group) {
                const float* x = W.data() + r * C + g0;
                float m = 0;
                for (size_t c = 0; c < group; ++c)
                  if (std::fabs(x[c]) > std::fabs(m)) m = x[c];
                auto sq_error = [&](double s) {  // rounding to nearest, clamped to -8..7
                  double e2 = 0;
                  for (size_t c = 0; c < group; ++c) {
                    const double q = s != 0 ? std::min(7.0, std::max(-8.0, std::nearbyint(x[c] / s))) : 0;
                    e2 += (x[c] - q * s) * (x[c] - q * s);
                  }
                  return e2;
                };
                double got = 0;
                for (size_t c = 0; c < group; ++c) got += (a[r * C + g0 + c] - x[c]) * (a[r * C + g0 + c] - x[c]);
                const double absmax = oracle::half(rill::kernels::f32_to_f16(std::fabs(m) / 7.f));
                const double q4_0 = oracle::half(rill::kernels::f32_to_f16(m / -8.f));
                CAPTURE(r);
                CAPTURE(g0);
                CHECK(got <= sq_error(absmax) * (1 + 1e-5) + 1e-12);
                CHECK(got <= sq_error(q4_0) * (1 + 1e-5) + 1e-12);
              }
        }
      }
    }
  }
}
