// Tokenizers embedded in model files. Bytes: token id = byte value (ids >= 256 decode to nothing).
#include "core/model_impl.h"

namespace rill {

Status tokenize(const Model& model, const char* text, size_t len, int32_t* out, size_t cap, size_t* n_out) {
  if (!model.ok()) return Status::kBadState;
  if ((len && !text) || !n_out || (cap && !out)) return Status::kInvalidArgument;
  switch (model.info().tokenizer) {
    case TokenizerKind::kBytes:
      *n_out = len;
      if (cap < len) return Status::kInvalidArgument;
      for (size_t i = 0; i < len; ++i) out[i] = static_cast<unsigned char>(text[i]);
      return Status::kOk;
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
    default:
      return Status::kUnsupported;
  }
}

}  // namespace rill
