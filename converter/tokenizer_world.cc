// RWKV "world" vocabulary files (rwkv_vocab_v20230424.txt): one token a line, `ID LITERAL BYTE_LENGTH`,
// LITERAL a Python str ('...') or bytes (b'...') literal. A str is encoded as UTF-8; in a str, \xHH is
// the code point U+00HH, in bytes it is the byte HH.
#include <fstream>

#include "content.h"

namespace rill {
namespace convert {

void put_utf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

namespace {

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes one Python string or bytes literal; false if malformed.
bool decode_literal(const std::string& lit, std::string* out) {
  size_t i = 0;
  const bool is_bytes = !lit.empty() && (lit[0] == 'b' || lit[0] == 'B');
  if (is_bytes) ++i;
  if (i >= lit.size() || (lit[i] != '\'' && lit[i] != '"')) return false;
  const char q = lit[i];
  if (lit.size() < i + 2 || lit.back() != q) return false;
  const std::string body = lit.substr(i + 1, lit.size() - i - 2);
  out->clear();
  for (size_t k = 0; k < body.size(); ++k) {
    const char c = body[k];
    if (c != '\\') {
      if (c == q) return false;  // an unescaped quote inside
      *out += c;
      continue;
    }
    if (++k >= body.size()) return false;
    const char e = body[k];
    auto hex = [&](size_t n, uint32_t* v) {
      *v = 0;
      for (size_t j = 0; j < n; ++j) {
        if (k + 1 >= body.size() || hexval(body[k + 1]) < 0) return false;
        *v = *v * 16 + static_cast<uint32_t>(hexval(body[++k]));
      }
      return true;
    };
    uint32_t v = 0;
    switch (e) {
      case '\\': *out += '\\'; break;
      case '\'': *out += '\''; break;
      case '"': *out += '"'; break;
      case 'n': *out += '\n'; break;
      case 'r': *out += '\r'; break;
      case 't': *out += '\t'; break;
      case 'a': *out += '\a'; break;
      case 'b': *out += '\b'; break;
      case 'f': *out += '\f'; break;
      case 'v': *out += '\v'; break;
      case 'x':
        if (!hex(2, &v)) return false;
        if (is_bytes) *out += static_cast<char>(v);
        else put_utf8(v, out);
        break;
      case 'u':
      case 'U':
        if (is_bytes || !hex(e == 'u' ? 4 : 8, &v) || v > 0x10FFFF) return false;
        put_utf8(v, out);
        break;
      default:
        if (e >= '0' && e <= '7') {  // octal, up to 3 digits
          v = static_cast<uint32_t>(e - '0');
          for (int j = 0; j < 2 && k + 1 < body.size() && body[k + 1] >= '0' && body[k + 1] <= '7'; ++j)
            v = v * 8 + static_cast<uint32_t>(body[++k] - '0');
          if (is_bytes) *out += static_cast<char>(v & 0xFF);
          else put_utf8(v, out);
        } else {
          return false;
        }
    }
  }
  return true;
}

}  // namespace

std::vector<std::string> read_world_vocab(const std::string& path, uint64_t vocab_size) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ConvertError(path + ": cannot read");
  std::vector<std::string> tokens;  // grows to the largest id read (the caller pads to the model's rows)
  std::vector<bool> seen;
  std::string line;
  size_t lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const size_t a = line.find(' '), b = line.rfind(' ');
    auto bad = [&](const std::string& why) {
      return ConvertError(path + ":" + std::to_string(lineno) + ": " + why);
    };
    if (a == std::string::npos || b <= a) throw bad("expected `ID LITERAL LENGTH`");
    uint64_t id = 0, len = 0;
    try {
      size_t used = 0;
      id = std::stoull(line.substr(0, a), &used);
      if (used != a) throw bad("bad id");
      len = std::stoull(line.substr(b + 1), &used);
      if (used != line.size() - b - 1) throw bad("bad length");
    } catch (const std::logic_error&) {
      throw bad("bad id or length");
    }
    std::string bytes;
    if (!decode_literal(line.substr(a + 1, b - a - 1), &bytes)) throw bad("malformed literal");
    if (bytes.size() != len)
      throw bad("literal has " + std::to_string(bytes.size()) + " bytes, the line says " + std::to_string(len));
    if (id == 0 || id >= vocab_size)
      throw bad("token id " + std::to_string(id) + " is outside [1, " + std::to_string(vocab_size) + ")");
    if (id >= tokens.size()) {
      tokens.resize(id + 1);
      seen.resize(id + 1, false);
    }
    if (seen[id]) throw bad("token id " + std::to_string(id) + " appears twice");
    seen[id] = true;
    tokens[id] = bytes;
  }
  return tokens;
}

}  // namespace convert
}  // namespace rill
