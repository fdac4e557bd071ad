// Tokenizers embedded in model files. Bytes: token id = byte value (ids >= 256 decode to nothing).
#include <cstring>

#include "core/model_impl.h"

namespace rill {

namespace {
// The id of the token whose bytes equal [p, p+n), or -1: binary search over the sorted vocabulary.
int32_t world_find(const ModelImpl& m, const unsigned char* p, size_t n) {
  uint32_t lo = 0, hi = m.n_sorted;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    const uint32_t id = m.vocab_sorted[mid];
    const uint32_t b = m.vocab_offsets[id], len = m.vocab_offsets[id + 1] - b;
    int c = std::memcmp(m.vocab_bytes + b, p, len < n ? len : n);
    if (c == 0) c = len < n ? -1 : (len > n ? 1 : 0);
    if (c == 0) return static_cast<int32_t>(id);
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}
}  // namespace

Status tokenize(const Model& model, const char* text, size_t len, int32_t* out, size_t cap, size_t* n_out) {
  if (!model.ok()) return Status::kBadState;
  if ((len && !text) || !n_out || (cap && !out)) return Status::kInvalidArgument;
  switch (model.info().tokenizer) {
    case TokenizerKind::kBytes:
      *n_out = len;
      if (cap < len) return Status::kInvalidArgument;
      for (size_t i = 0; i < len; ++i) out[i] = static_cast<unsigned char>(text[i]);
      return Status::kOk;
    case TokenizerKind::kWorld: {  // greedy longest match, as RWKV's trie tokenizer
      const ModelImpl& m = *model.impl();
      const unsigned char* t = reinterpret_cast<const unsigned char*>(text);
      size_t count = 0, i = 0;
      while (i < len) {
        int32_t id = -1;
        size_t n = len - i < m.max_token_bytes ? len - i : m.max_token_bytes;
        for (; n > 0 && (id = world_find(m, t + i, n)) < 0; --n) {
        }
        if (id < 0) {
          *n_out = count;
          return Status::kInvalidArgument;  // a byte no token covers
        }
        if (count < cap) out[count] = id;
        ++count;
        i += n;
      }
      *n_out = count;
      return count <= cap ? Status::kOk : Status::kInvalidArgument;
    }
    default:
      return Status::kUnsupported;
  }
}

Status detokenize(const Model& model, int32_t token, char* out, size_t cap, size_t* n_out) {
  if (!model.ok()) return Status::kBadState;
  if (!n_out || (cap && !out)) return Status::kInvalidArgument;
  const ModelInfo in = model.info();
  if (token < 0 || static_cast<uint32_t>(token) >= in.vocab_size) return Status::kTokenRange;
  switch (in.tokenizer) {
    case TokenizerKind::kBytes:
      *n_out = token < 256 ? 1 : 0;
      if (cap < *n_out) return Status::kInvalidArgument;
      if (*n_out) out[0] = static_cast<char>(token);
      return Status::kOk;
    case TokenizerKind::kWorld: {
      const ModelImpl& m = *model.impl();
      const uint32_t b = m.vocab_offsets[token];
      *n_out = m.vocab_offsets[token + 1] - b;
      if (cap < *n_out) return Status::kInvalidArgument;
      std::memcpy(out, m.vocab_bytes + b, *n_out);
      return Status::kOk;
    }
    default:
      return Status::kUnsupported;
  }
}

}  // namespace rill
