// npy_compare GOT.npy WANT.npy [--rel R] [--top1 F]: compares two float arrays, as the CMake-driven
// CLI tests need (rill logits against golden logits, rill stream against a fixture's outputs).
//   --rel R   max |got - want| <= R * max |want| (default 1e-4)
//   --top1 F  instead: the rows' largest elements agree on at least a fraction F of the rows
// Prints the figures; exit 0 if they hold, 1 if not, 2 if a file cannot be read or the shapes differ.
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
  double rel = 1e-4, top1 = -1;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--rel") rel = std::atof(argv[i + 1]);
    else if (k == "--top1") top1 = std::atof(argv[i + 1]);
    else return std::fprintf(stderr, "npy_compare: unknown option %s\n", argv[i]), 2;
  }
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
  for (size_t r = 0; r < rows; ++r) {
    const float* g = got.data.data() + r * cols;
    const float* w = want.data.data() + r * cols;
    agree += std::max_element(g, g + cols) - g == std::max_element(w, w + cols) - w;
  }
  std::printf("npy_compare: %zu x %zu, max |diff| %.3g of max |want| %.3g (%.2e relative), top-1 agree %zu/%zu\n", rows,
              cols, diff, peak, peak > 0 ? diff / peak : 0.0, agree, rows);
  if (top1 >= 0) return agree >= top1 * static_cast<double>(rows) ? 0 : 1;
  return diff <= rel * peak ? 0 : 1;
}
