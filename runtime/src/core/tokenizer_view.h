// A verified tokenizer: views into a file's Tokenizer table, bound once (bind_tokenizer checks every
// table so the readers can trust it), then read by tokenize_view (text/, the extension) and
// detokenize_view (the core). A model holds one; `rill tokenize --tokenizer FILE` binds one alone.
#pragma once

#include <cstddef>
#include <cstdint>

#include "rill/rill.hpp"

namespace rill {

struct TokenizerView {
  TokenizerKind kind = TokenizerKind::kNone;
  uint32_t vocab_size = 0;
  // World and BPE: token i = vocab_bytes[vocab_offsets[i], vocab_offsets[i+1]).
  const uint8_t* vocab_bytes = nullptr;
  const uint32_t* vocab_offsets = nullptr;
  uint32_t max_token_bytes = 0;
  // World: the non-empty tokens' ids sorted by their bytes.
  const uint32_t* vocab_sorted = nullptr;
  uint32_t n_sorted = 0;
  // BPE: merges (const fb::BpeMerge*) sorted by (left, right); the token of each byte.
  const void* merges = nullptr;
  uint32_t n_merges = 0;
  const uint32_t* byte_tokens = nullptr;
  const void* table = nullptr;  // const fb::Tokenizer*: added tokens, normalizer, split pattern
  // BPE with byte fallback: vocab_sorted holds the character-sequence tokens (the characters' lookup),
  // byte_tokens every byte's <0xNN> token; space_prefix is fb::SpacePrefix.
  uint8_t space_prefix = 0;
  bool split_before_space = false;  // fb::Tokenizer::split_before_space
  // SentencePiece: the serialized model (tokenize loads it into libsentencepiece once per process).
  const uint8_t* sp_model = nullptr;
  size_t sp_model_bytes = 0;
};

// Checks `table` (const fb::Tokenizer*, may be null: kind None) for a model of vocab_size tokens.
Status bind_tokenizer(const void* table, uint32_t vocab_size, TokenizerView* out, Error* err);
// text/tokenize.cc (the extension) and session/tokenizer.cc (the core); as rill::tokenize/detokenize.
Status tokenize_view(const TokenizerView& t, const char* text, size_t len, int32_t* out, size_t cap, size_t* n_out);
Status detokenize_view(const TokenizerView& t, int32_t token, char* out, size_t cap, size_t* n_out);

}  // namespace rill
