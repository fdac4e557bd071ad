// npy_compare GOT.npy WANT.npy [--rel R] [--top1 F] [--kl K]: compares two float arrays, as the
// CMake-driven tests need (rill logits against golden logits, rill stream against a fixture's outputs,
// a quantized model's logits against the f32 model's).
//   --rel R   max |got - want| <= R * max |want|
//   --top1 F  the rows' largest elements agree on at least a fraction F of the rows
//   --kl K    rows as logits: the mean over rows of KL(softmax(want) || softmax(got)) <= K
// With none given, --rel 1e-4. Prints the figures; exit 0 if every given bound holds, 1 if one does
// not, 2 if a file cannot be read or the shapes differ.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "npy.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: npy_compare GOT.npy WANT.npy [--rel R | --top1 F]\n");
    return 2;
  }
  double rel = -1, top1 = -1, kl = -1;
  for (int i = 3; i < argc; i += 2) {
    const std::string k = argv[i];
    if (i + 1 >= argc) return std::fprintf(stderr, "npy_compare: %s wants a value\n", argv[i]), 2;
    if (k == "--rel") rel = std::atof(argv[i + 1]);
    else if (k == "--top1") top1 = std::atof(argv[i + 1]);
    else if (k == "--kl") kl = std::atof(argv[i + 1]);
    else return std::fprintf(stderr, "npy_compare: unknown option %s\n", argv[i]), 2;
  }
  if (rel < 0 && top1 < 0 && kl < 0) rel = 1e-4;
  rill::npy::Array got, want;
  std::string why;
  if (!rill::npy::read(argv[1], &got, &why) || !rill::npy::read(argv[2], &want, &why, true)) {
    std::fprintf(stderr, "npy_compare: %s\n", why.c_str());
    return 2;
  }
  if (got.shape != want.shape || got.data.empty()) {
    std::fprintf(stderr, "npy_compare: %s and %s differ in shape (or are empty)\n", argv[1], argv[2]);
    return 2;
  }
  double diff = 0, peak = 0;
  for (size_t i = 0; i < got.data.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(got.data[i]) - want.data[i]));
    peak = std::max(peak, std::fabs(static_cast<double>(want.data[i])));
  }
  const size_t rows = got.rows(), cols = got.cols();
  size_t agree = 0;
  double sum_kl = 0;
  for (size_t r = 0; r < rows; ++r) {
    const float* g = got.data.data() + r * cols;
    const float* w = want.data.data() + r * cols;
    agree += std::max_element(g, g + cols) - g == std::max_element(w, w + cols) - w;
    const double mg = *std::max_element(g, g + cols), mw = *std::max_element(w, w + cols);
    double zg = 0, zw = 0;
    for (size_t c = 0; c < cols; ++c) zg += std::exp(g[c] - mg), zw += std::exp(w[c] - mw);
    for (size_t c = 0; c < cols; ++c) {
      const double lw = w[c] - mw - std::log(zw), lg = g[c] - mg - std::log(zg);
      sum_kl += std::exp(lw) * (lw - lg);
    }
  }
  const double mean_kl = sum_kl / static_cast<double>(rows);
  std::printf("npy_compare: %zu x %zu, max |diff| %.3g of max |want| %.3g (%.2e relative), top-1 agree %zu/%zu (%.4f), "
              "mean KL %.3g\n", rows, cols, diff, peak, peak > 0 ? diff / peak : 0.0, agree, rows,
              static_cast<double>(agree) / static_cast<double>(rows), mean_kl);
  bool ok = true;
  if (rel >= 0 && diff > rel * peak) ok = false, std::printf("npy_compare: max |diff| exceeds %g relative\n", rel);
  if (top1 >= 0 && agree < top1 * static_cast<double>(rows)) ok = false, std::printf("npy_compare: top-1 below %g\n", top1);
  if (kl >= 0 && !(mean_kl <= kl)) ok = false, std::printf("npy_compare: mean KL above %g\n", kl);
  return ok ? 0 : 1;
}
