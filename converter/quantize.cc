// Which tensors are quantized, and how: int8 with one f32 scale per row, int4 in groups with f16 scales.
#include <cmath>
#include <cstring>

#include "kernels/kernels.h"
#include "content.h"

namespace rill {
namespace convert {

namespace {

// Glob with '*' (any run of characters) over the full rill name, e.g. "layers.*.out_proj".
bool glob(const char* p, const char* s) {
  if (*p == '\0') return *s == '\0';
  if (*p == '*') return glob(p + 1, s) || (*s && glob(p, s + 1));
  return *s && *p == *s && glob(p + 1, s + 1);
}

bool any(const std::vector<std::string>& pats, const std::string& name) {
  for (const auto& p : pats)
    if (glob(p.c_str(), name.c_str())) return true;
  return false;
}

}  // namespace

std::string full_name(const FileTensor& t) {
  return t.layer < 0 ? t.name : "layers." + std::to_string(t.layer) + "." + t.name;
}

void choose_quantization(FileContent* content, const Options& opts) {
  const int bits = opts.dtype == "q8" ? 8 : opts.dtype == "q4" ? 4 : 0;
  if (bits == 0) return;
  for (FileTensor& t : content->tensors) {
    const std::string name = full_name(t);
    const bool forced = any(opts.quantize, name);
    if (t.dclass == spec::DClass::kF32) {  // vectors, norms, SSM parameters: f32 whatever --quantize says
      if (forced) t.note = "f32 only (--quantize does not apply)";
      continue;
    }
    const uint64_t cols = t.shape.at(1);
    const uint32_t group = bits == 8 ? static_cast<uint32_t>(cols) : opts.group;
    if (t.dclass == spec::DClass::kFloat) {
      t.note = "float only (the runtime multiplies it in float)";
    } else if (any(opts.keep_float, name)) {
      t.note = "--keep-float";
    } else if (!forced && t.dclass == spec::DClass::kSensitive) {
      t.note = "sensitive (dynamics)";
    } else if (cols % 32 != 0 || cols % group != 0) {
      t.note = "columns not a multiple of " + std::to_string(bits == 8 ? 32 : group);
    } else {
      t.qbits = bits;
      t.group = group;
      t.rows16 = opts.quant_layout == "rows16";
      t.dtype = bits == 8 ? fb::DType::I8 : fb::DType::I4;
      continue;
    }
    t.dtype = fb::DType::F16;  // stays float: f16 in quantized models
  }
}

// Quantizes rows x cols values; fills data and scale bytes, returns the relative RMS error.
double quantize_matrix(const std::vector<float>& w, uint64_t rows, uint64_t cols, int bits, uint32_t group,
                       bool rows16, std::vector<uint8_t>* data, std::vector<uint8_t>* scales) {
  double err2 = 0, ref2 = 0;
  if (bits == 8) {
    big_resize(data, rows * cols);
    scales->assign(rows * 4, 0);
    for (uint64_t r = 0; r < rows; ++r) {
      const float* x = w.data() + r * cols;
      float amax = 0;
      for (uint64_t c = 0; c < cols; ++c) amax = std::fmax(amax, std::fabs(x[c]));
      const float s = amax / 127.f;
      const float inv = s > 0 ? 1.f / s : 0.f;
      for (uint64_t c = 0; c < cols; ++c) {
        const int q = static_cast<int>(std::lrint(x[c] * inv));
        const int8_t qq = static_cast<int8_t>(q < -127 ? -127 : q > 127 ? 127 : q);
        (*data)[r * cols + c] = static_cast<uint8_t>(qq);
        const double d = x[c] - qq * static_cast<double>(s);
        err2 += d * d, ref2 += static_cast<double>(x[c]) * x[c];
      }
      std::memcpy(scales->data() + r * 4, &s, 4);
    }
    if (rows16) {  // the same values, 16 rows interleaved and offset to unsigned (kernels.h, q8x16_value)
      std::vector<uint8_t> d2;
      big_resize(&d2, data->size());
      kernels::q8_to_x16(reinterpret_cast<const int8_t*>(data->data()), rows, cols, d2.data());
      data->swap(d2);
    }
  } else {
    const uint64_t groups = cols / group;
    big_resize(data, rows * cols / 2);
    scales->assign(rows * groups * 2, 0);
    for (uint64_t r = 0; r < rows; ++r) {
      uint8_t* row = data->data() + r * (cols / 2);
      for (uint64_t g = 0; g < groups; ++g) {
        const float* x = w.data() + r * cols + g * group;
        float amax = 0;
        for (uint32_t c = 0; c < group; ++c) amax = std::fmax(amax, std::fabs(x[c]));
        const uint16_t sh = kernels::f32_to_f16(amax / 7.f);
        const float s = kernels::f16_to_f32(sh);  // quantize against the scale as stored
        const float inv = s > 0 ? 1.f / s : 0.f;
        for (uint32_t c = 0; c < group; ++c) {
          int q = static_cast<int>(std::lrint(x[c] * inv));
          q = q < -8 ? -8 : q > 7 ? 7 : q;
          const uint64_t col = g * group + c;
          uint8_t& byte = row[(col / 32) * 16 + (col % 16)];
          byte |= static_cast<uint8_t>((q + 8) << ((col % 32) < 16 ? 0 : 4));
          const double d = x[c] - q * static_cast<double>(s);
          err2 += d * d, ref2 += static_cast<double>(x[c]) * x[c];
        }
        std::memcpy(scales->data() + (r * groups + g) * 2, &sh, 2);
      }
    }
    if (rows16) {  // the same values, 16 rows interleaved (kernels.h, q4x16_value)
      std::vector<uint8_t> d2;
      big_resize(&d2, data->size());
      std::vector<uint16_t> s_in(rows * groups), s_out(rows * groups);
      std::memcpy(s_in.data(), scales->data(), scales->size());
      kernels::q4_to_x16(data->data(), s_in.data(), rows, cols, group, d2.data(), s_out.data());
      data->swap(d2);
      std::memcpy(scales->data(), s_out.data(), scales->size());
    }
  }
  return ref2 > 0 ? std::sqrt(err2 / ref2) : 0.0;
}

}  // namespace convert
}  // namespace rill
