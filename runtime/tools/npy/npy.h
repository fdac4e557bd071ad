// NumPy .npy files, strictly: the CLI (rill logits / stream) and the tests read and write float arrays
// with this one reader and writer. A file that is not exactly what its header says is refused with
// the reason: a wrong magic or version, a header that is not the dictionary numpy writes (descr,
// fortran_order, shape), a dtype other than little-endian float32 (or float64 where allowed), Fortran
// order, or data shorter or longer than the shape.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace rill {
namespace npy {

struct Array {
  std::vector<size_t> shape;  // C order, outermost first; empty for a scalar
  std::vector<float> data;    // float32 values (float64 files are narrowed)
  bool was_f64 = false;
  size_t rows() const { return shape.empty() ? 1 : shape[0]; }
  // Elements per row: the product of every dimension after the first (1 for a 1-D array).
  size_t cols() const;
};

// Reads `path`. accept_f64 lets a float64 file through (narrowed to float32). False with *why set on
// any defect.
bool read(const std::string& path, Array* out, std::string* why, bool accept_f64 = false);
// The same from bytes in memory.
bool parse(const std::string& bytes, Array* out, std::string* why, bool accept_f64 = false);
// Writes float32 data of `shape` (version 1.0, C order). False with *why set if it cannot.
bool write(const std::string& path, const float* data, const std::vector<size_t>& shape, std::string* why);

}  // namespace npy
}  // namespace rill
