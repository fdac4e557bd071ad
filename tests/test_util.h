// Helpers shared by rill's tests: .npy reading, temporary folders, converting fixtures.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "npy.h"
#include "rill/convert.hpp"
#include "rill/extension.hpp"
#include "rill/rill.hpp"

namespace rill_test {

inline std::string src_dir() { return RILL_SOURCE_DIR; }
inline std::string golden_dir(const std::string& c) { return src_dir() + "/tests/golden/" + c; }

// One token of the wkv recurrence in double, as backend.h defines the op, on S [H, V, K]: token vectors
// r, w, k, a, b [H*K] (a, b null: no delta term), v [H*V]; y [H*V] read after the update (before, with
// read_first).
inline void wkv_step_double(double* S, const float* r, const float* w, const float* k, const float* v, const float* a,
                            const float* b, double* y, size_t H, size_t K, size_t V, bool read_first) {
  for (size_t h = 0; h < H; ++h)
    for (size_t i = 0; i < V; ++i) {
      double* row = S + (h * V + i) * K;
      const float* rh = r + h * K;
      const float* wh = w + h * K;
      const float* kh = k + h * K;
      double sa = 0, before = 0, after = 0;
      for (size_t j = 0; a && j < K; ++j) sa += row[j] * a[h * K + j];
      for (size_t j = 0; j < K; ++j) {
        before += row[j] * rh[j];
        row[j] = row[j] * wh[j] + (a ? sa * b[h * K + j] : 0.0) + double(v[h * V + i]) * kh[j];
        after += row[j] * rh[j];
      }
      y[h * V + i] = read_first ? before : after;
    }
}

// A float32 C-order .npy file, read with the CLI's strict reader (runtime/tools/npy): a file that
// cannot be read fails the test, so a missing or damaged golden never passes as "no difference".
struct Npy {
  std::vector<size_t> shape;
  std::vector<float> data;
  // The largest magnitude of any element.
  float max_abs() const {
    float m = 0;
    for (float v : data) m = std::max(m, std::fabs(v));
    return m;
  }
  // Row t of a [T, V] array (golden logits): the row's values, checked to exist.
  const float* row(size_t t) const {
    REQUIRE_MESSAGE(shape.size() == 2, "a [T, V] array expected, got " << shape.size() << " dimensions");
    REQUIRE_MESSAGE(t < shape[0], "row " << t << " of " << shape[0]);
    return data.data() + t * shape[1];
  }
  size_t width() const { return shape.size() == 2 ? shape[1] : 0; }
  // Max |got - row t| over row t, got [V].
  float row_diff(size_t t, const float* got) const {
    const float* want = row(t);
    float d = 0;
    for (size_t v = 0; v < width(); ++v) d = std::max(d, std::fabs(got[v] - want[v]));
    return d;
  }
  // Whether got [V] has its largest value at the same index as row t (the first largest, on ties).
  bool same_top1(size_t t, const float* got) const;
};

// The index of the first largest of v[0, n).
inline size_t argmax(const float* v, size_t n) { return static_cast<size_t>(std::max_element(v, v + n) - v); }

inline bool Npy::same_top1(size_t t, const float* got) const { return argmax(got, width()) == argmax(row(t), width()); }

inline Npy read_npy(const std::string& path) {
  rill::npy::Array a;
  std::string why;
  REQUIRE_MESSAGE(rill::npy::read(path, &a, &why), path << ": " << why);
  REQUIRE_MESSAGE(!a.data.empty(), path << " holds no values");
  return Npy{a.shape, a.data};
}

// A line for the test script's summary (scripts/test.sh): appended to $RILL_TEST_REPORT_DIR/<file>
// when that is set, and shown as a doctest message either way.
inline void report_line(const std::string& file, const std::string& line) {
  MESSAGE(line);
  if (const char* dir = std::getenv("RILL_TEST_REPORT_DIR")) {
    std::ofstream f(std::string(dir) + "/" + file, std::ios::app);
    f << line << "\n";
  }
}

inline std::vector<int32_t> read_tokens(const std::string& path) {
  std::ifstream f(path);
  std::vector<int32_t> t;
  std::string tok;
  while (std::getline(f, tok, ',')) t.push_back(std::stoi(tok));
  return t;
}

// A fresh temporary folder, removed with its files on destruction.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/rill-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    if (ec) std::fprintf(stderr, "cannot remove %s: %s\n", path.c_str(), ec.message().c_str());
  }
  std::string file(const std::string& n) const { return path + "/" + n; }
};

inline bool file_exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

inline void copy_dir(const std::string& from, const std::string& to) {
  std::error_code ec;
  std::filesystem::create_directories(to, ec);
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) std::fprintf(stderr, "copy %s -> %s failed: %s\n", from.c_str(), to.c_str(), ec.message().c_str());
}

inline std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

// Converts a checkpoint folder; returns the error message ("" on success).
inline std::string convert_ckpt(const std::string& dir, const std::string& out, const std::string& dtype = "f32",
                           bool force = true, const std::string& quant_layout = "rows16",
                           const std::string& kv_dtype = "auto") {
  rill::convert::Options o;
  o.kv_dtype = kv_dtype;
  o.input_dir = dir;
  o.output = out;
  o.dtype = dtype;
  o.force = force;
  o.quant_layout = quant_layout;
  o.quiet = true;
  try {
    rill::convert::run(o);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// A checkpoint converted into a temporary folder and opened (mapped, verified) for the test.
struct ConvertedModel {
  TempDir tmp;
  rill::LoadedModel lm;
  explicit ConvertedModel(const std::string& ckpt, const std::string& dtype = "f32") {
    const std::string path = tmp.file("m.rill");
    const std::string err = convert_ckpt(ckpt, path, dtype);
    REQUIRE_MESSAGE(err.empty(), err);
    rill::Error e;
    REQUIRE_MESSAGE(rill::LoadedModel::open(path.c_str(), rill::ModelOptions{}, &lm, &e) == rill::Status::kOk, e.message);
  }
  const rill::Model& model() const { return lm.model(); }
};

}  // namespace rill_test
