// SentencePiece tokenizer.model files (Gemma, RecurrentGemma): the serialized ModelProto is embedded
// whole (text -> ids runs it through libsentencepiece at run time), and each id's text is derived here
// for detokenize. Only the pieces are read, by a small protobuf wire-format reader:
//   ModelProto { repeated SentencePiece pieces = 1; ... }
//   SentencePiece { string piece = 1; float score = 2; Type type = 3; }
//   Type: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6
#include <cstdio>
#include <fstream>
#include <sstream>

#include "content.h"

namespace rill {
namespace convert {

namespace {

struct Wire {
  const uint8_t* p;
  const uint8_t* end;
  const std::string& what;
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) throw ConvertError(what + ": truncated varint");
      const uint8_t b = *p++;
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    throw ConvertError(what + ": varint too long");
  }
  // Skips a field's value of wire type `wt`; returns a length-delimited value's bytes in [*a, *b).
  void value(uint32_t wt, const uint8_t** a, const uint8_t** b) {
    *a = *b = nullptr;
    if (wt == 0) {
      varint();
    } else if (wt == 1 || wt == 5) {
      const size_t n = wt == 1 ? 8 : 4;
      if (static_cast<size_t>(end - p) < n) throw ConvertError(what + ": truncated fixed field");
      *a = p, p += n, *b = p;
    } else if (wt == 2) {
      const uint64_t n = varint();
      if (n > static_cast<uint64_t>(end - p)) throw ConvertError(what + ": a field runs past the end");
      *a = p, p += n, *b = p;
    } else {
      throw ConvertError(what + ": unsupported wire type " + std::to_string(wt));
    }
  }
};

}  // namespace

SpmTokenizer read_sentencepiece(const std::string& path, uint64_t vocab_size) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ConvertError("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  SpmTokenizer out;
  out.model = ss.str();
  if (out.model.empty() || out.model.size() > (64u << 20)) throw ConvertError(path + ": empty or larger than 64 MiB");
  const auto* base = reinterpret_cast<const uint8_t*>(out.model.data());
  Wire w{base, base + out.model.size(), path};
  while (w.p < w.end) {
    const uint64_t key = w.varint();
    const uint8_t *a, *b;
    w.value(static_cast<uint32_t>(key & 7), &a, &b);
    if ((key >> 3) != 1 || (key & 7) != 2) continue;  // not a piece
    Wire pw{a, b, path};
    std::string piece;
    uint64_t type = 1;  // NORMAL
    while (pw.p < pw.end) {
      const uint64_t k = pw.varint();
      const uint8_t *x, *y;
      if ((k >> 3) == 3 && (k & 7) == 0) {
        type = pw.varint();
        continue;
      }
      pw.value(static_cast<uint32_t>(k & 7), &x, &y);
      if ((k >> 3) == 1 && (k & 7) == 2) piece.assign(reinterpret_cast<const char*>(x), static_cast<size_t>(y - x));
    }
    const size_t id = out.vocab.size();
    std::string text;
    if (type == 6) {  // BYTE: "<0xNN>"
      unsigned v = 0;
      if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>' ||
          std::sscanf(piece.c_str() + 3, "%2x", &v) != 1)
        throw ConvertError(path + ": byte piece " + std::to_string(id) + " is '" + piece + "', not <0xNN>");
      text.assign(1, static_cast<char>(v));
    } else if (type == 1 || type == 4) {  // NORMAL, USER_DEFINED: U+2581 stands for a space
      for (size_t i = 0; i < piece.size();) {
        if (piece.compare(i, 3, "\xE2\x96\x81") == 0) text += ' ', i += 3;
        else text += piece[i++];
      }
    } else if (type == 2) {
      out.unk_id = static_cast<int32_t>(id);
    }  // CONTROL and UNUSED decode to nothing
    out.vocab.push_back(std::move(text));
    out.pieces.push_back(std::move(piece));
  }
  if (out.vocab.empty()) throw ConvertError(path + ": no pieces (not a SentencePiece model?)");
  if (out.vocab.size() > vocab_size)
    throw ConvertError(path + ": " + std::to_string(out.vocab.size()) + " pieces, but the model has " +
                       std::to_string(vocab_size) + " embedding rows");
  for (size_t id = 0; id < out.pieces.size(); ++id) {
    if (out.pieces[id] == "<bos>" || out.pieces[id] == "<s>") out.bos_id = static_cast<int32_t>(id);
    if (out.pieces[id] == "<eos>" || out.pieces[id] == "</s>") out.eos_id = static_cast<int32_t>(id);
  }
  return out;
}

}  // namespace convert
}  // namespace rill
