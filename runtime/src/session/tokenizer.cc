// Token ids -> text with the model's embedded tokenizer (text -> ids is in text/tokenize.cc, part of
// the extension). Bytes: token id = byte value (ids >= 256 decode to nothing); World, BPE and
// SentencePiece: each token's bytes are stored in the file.
#include <cstring>

#include "core/model_impl.h"

namespace rill {

Status detokenize_view(const TokenizerView& t, int32_t token, char* out, size_t cap, size_t* n_out) {
  if (!n_out || (cap && !out)) return Status::kInvalidArgument;
  if (token < 0 || static_cast<uint32_t>(token) >= t.vocab_size) return Status::kTokenRange;
  switch (t.kind) {
    case TokenizerKind::kBytes:
      *n_out = token < 256 ? 1 : 0;
      if (cap < *n_out) return Status::kInvalidArgument;
      if (*n_out) out[0] = static_cast<char>(token);
      return Status::kOk;
    case TokenizerKind::kWorld:
    case TokenizerKind::kBpe:
    case TokenizerKind::kSentencePiece:
    case TokenizerKind::kBpeByteFallback: {
      const TokenizerView& m = t;
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

Status detokenize(const Model& model, int32_t token, char* out, size_t cap, size_t* n_out) {
  if (!model.ok()) return Status::kBadState;
  return detokenize_view(model.impl()->tok, token, out, cap, n_out);
}

}  // namespace rill
