// .npy reading and writing (npy.h), after numpy's format description (numpy.lib.format): magic
// "\x93NUMPY", a version byte pair (1.0: u16 header length; 2.0 and 3.0: u32), then an ASCII
// Python dict literal padded with spaces and ending in '\n', then the data.
#include "npy.h"

#include <cstdint>
#include <cstdio>
#include <cstring>

namespace rill {
namespace npy {

size_t Array::cols() const {
  size_t c = 1;
  for (size_t i = 1; i < shape.size(); ++i) c *= shape[i];
  return c;
}

namespace {

bool fail(std::string* why, const std::string& m) {
  if (why) *why = m;
  return false;
}

// A small reader of the dict literal numpy writes: {'key': value, ...} with values a quoted string,
// True/False, or a tuple of non-negative integers.
struct Dict {
  std::string descr;
  int fortran = -1;  // -1: absent
  bool has_shape = false;
  std::vector<size_t> shape;
};

bool parse_dict(const std::string& h, Dict* d, std::string* why) {
  size_t i = 0;
  auto ws = [&] {
    while (i < h.size() && (h[i] == ' ' || h[i] == '\n')) ++i;
  };
  auto expect = [&](char c) {
    ws();
    if (i >= h.size() || h[i] != c) return false;
    ++i;
    return true;
  };
  auto quoted = [&](std::string* s) {
    ws();
    if (i >= h.size() || (h[i] != '\'' && h[i] != '"')) return false;
    const char q = h[i++];
    const size_t end = h.find(q, i);
    if (end == std::string::npos) return false;
    *s = h.substr(i, end - i);
    i = end + 1;
    return true;
  };
  if (!expect('{')) return fail(why, "the header is not a dictionary");
  for (;;) {
    ws();
    if (i < h.size() && h[i] == '}') {
      ++i;
      break;
    }
    std::string key;
    if (!quoted(&key) || !expect(':')) return fail(why, "the header dictionary is malformed");
    ws();
    if (key == "descr") {
      if (!quoted(&d->descr)) return fail(why, "descr is not a string");
    } else if (key == "fortran_order") {
      if (h.compare(i, 4, "True") == 0) d->fortran = 1, i += 4;
      else if (h.compare(i, 5, "False") == 0) d->fortran = 0, i += 5;
      else return fail(why, "fortran_order is not True or False");
    } else if (key == "shape") {
      if (!expect('(')) return fail(why, "shape is not a tuple");
      d->has_shape = true;
      for (;;) {
        ws();
        if (i < h.size() && h[i] == ')') {
          ++i;
          break;
        }
        size_t v = 0, digits = 0;
        while (i < h.size() && h[i] >= '0' && h[i] <= '9' && digits < 16) v = v * 10 + static_cast<size_t>(h[i++] - '0'), ++digits;
        if (digits == 0 || digits == 16) return fail(why, "shape holds something other than sizes");
        d->shape.push_back(v);
        ws();
        if (i < h.size() && h[i] == ',') ++i;
        else if (i < h.size() && h[i] == ')') continue;
        else return fail(why, "shape is not a tuple of sizes");
      }
    } else {
      return fail(why, "the header has an unknown key '" + key + "'");
    }
    ws();
    if (i < h.size() && h[i] == ',') ++i;
    else if (i < h.size() && h[i] == '}') continue;
    else return fail(why, "the header dictionary is malformed");
  }
  ws();
  if (i != h.size()) return fail(why, "text after the header dictionary");
  if (d->descr.empty() || d->fortran < 0 || !d->has_shape) return fail(why, "the header lacks descr, fortran_order or shape");
  return true;
}

}  // namespace

bool parse(const std::string& bytes, Array* out, std::string* why, bool accept_f64) {
  *out = Array{};
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) return fail(why, "not a .npy file (no \\x93NUMPY magic)");
  const unsigned major = static_cast<unsigned char>(bytes[6]), minor = static_cast<unsigned char>(bytes[7]);
  const size_t len_bytes = major == 1 ? 2 : (major == 2 || major == 3) ? 4 : 0;
  if (len_bytes == 0 || minor != 0) return fail(why, "unknown .npy version " + std::to_string(major) + "." + std::to_string(minor));
  if (bytes.size() < 8 + len_bytes) return fail(why, "truncated .npy header");
  size_t hl = 0;
  for (size_t k = 0; k < len_bytes; ++k) hl |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + k])) << (8 * k);
  const size_t at = 8 + len_bytes;
  if (hl > bytes.size() - at) return fail(why, "truncated .npy header");
  std::string h = bytes.substr(at, hl);
  if (h.empty() || h.back() != '\n') return fail(why, "the header does not end in a newline");
  h.pop_back();
  Dict d;
  if (!parse_dict(h, &d, why)) return false;
  const bool f4 = d.descr == "<f4", f8 = d.descr == "<f8";
  if (!f4 && !(f8 && accept_f64))
    return fail(why, "dtype '" + d.descr + "', little-endian float32 ('<f4')" +
                         (accept_f64 ? " or float64 ('<f8')" : "") + " expected");
  if (d.fortran) return fail(why, "Fortran order; C order expected");
  size_t n = 1;
  for (size_t s : d.shape) {
    if (s != 0 && n > (size_t(1) << 40) / s) return fail(why, "the shape is too large");
    n *= s;
  }
  const size_t esz = f4 ? 4 : 8, data = bytes.size() - at - hl;
  if (data != n * esz)
    return fail(why, "the data is " + std::to_string(data) + " bytes, the shape needs " + std::to_string(n * esz));
  out->shape = d.shape;
  out->was_f64 = f8;
  out->data.resize(n);
  const char* p = bytes.data() + at + hl;
  for (size_t k = 0; k < n; ++k) {
    if (f4) {
      std::memcpy(&out->data[k], p + 4 * k, 4);
    } else {
      double v;
      std::memcpy(&v, p + 8 * k, 8);
      out->data[k] = static_cast<float>(v);
    }
  }
  return true;
}

bool read(const std::string& path, Array* out, std::string* why, bool accept_f64) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return fail(why, "cannot open " + path);
  std::string bytes;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
  const bool err = std::ferror(f);
  std::fclose(f);
  if (err) return fail(why, "cannot read " + path);
  return parse(bytes, out, why, accept_f64);
}

bool write(const std::string& path, const float* data, const std::vector<size_t>& shape, std::string* why) {
  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  size_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) h += ", ";
    h += std::to_string(shape[i]);
    n *= shape[i];
  }
  h += shape.size() == 1 ? ",), }" : "), }";  // numpy's tuples: "(3, 4)", "(3,)", "()"
  while ((10 + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return fail(why, "cannot create " + path);
  const unsigned char magic[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  const uint16_t hl = static_cast<uint16_t>(h.size());
  const unsigned char len[2] = {static_cast<unsigned char>(hl & 0xFF), static_cast<unsigned char>(hl >> 8)};
  bool ok = std::fwrite(magic, 1, 8, f) == 8 && std::fwrite(len, 1, 2, f) == 2 &&
            std::fwrite(h.data(), 1, h.size(), f) == h.size() && (n == 0 || std::fwrite(data, sizeof(float), n, f) == n);
  ok = std::fclose(f) == 0 && ok;
  return ok || fail(why, "cannot write " + path);
}

}  // namespace npy
}  // namespace rill
