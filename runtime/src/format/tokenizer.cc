// Binding a file's Tokenizer table: every offset, id and order checked once, so tokenize and
// detokenize can read the tables without checks of their own.
#include <algorithm>
#include <cstring>

#include "core/model_impl.h"
#include "rill_generated.h"

namespace rill {

namespace {

// Checks a vocabulary completely so tokenize can trust it: offsets in bounds and ordered; for World,
// sorted ids valid, non-empty and strictly increasing by bytes.
Status bind_vocab(const fb::Tokenizer* tk, bool need_sorted, TokenizerView* impl, Error* err) {
  const auto* bytes = tk->vocab_bytes();
  const auto* off = tk->vocab_offsets();
  const auto* sorted = tk->vocab_sorted();
  const uint32_t V = impl->vocab_size;
  if (!bytes || !off || (need_sorted && !sorted) || off->size() != V + 1ull || off->Get(0) != 0 ||
      off->Get(V) != bytes->size())
    return fail(err, Status::kCorrupt, "vocabulary: offsets do not describe %u tokens", V);
  uint32_t max_len = 0;
  for (uint32_t i = 0; i < V; ++i) {
    if (off->Get(i + 1) < off->Get(i)) return fail(err, Status::kCorrupt, "vocabulary: offsets decrease at %u", i);
    max_len = std::max(max_len, off->Get(i + 1) - off->Get(i));
  }
  if (max_len != tk->max_token_bytes() || max_len > 4096)
    return fail(err, Status::kCorrupt, "vocabulary: longest token is %u bytes, header says %u", max_len,
                tk->max_token_bytes());
  const uint8_t* b = bytes->data();
  for (uint32_t k = 0; need_sorted && k < sorted->size(); ++k) {
    const uint32_t id = sorted->Get(k);
    if (id >= V || off->Get(id + 1) == off->Get(id))
      return fail(err, Status::kCorrupt, "vocabulary: sorted entry %u (id %u) is not a token", k, id);
    if (k > 0) {
      const uint32_t p = sorted->Get(k - 1);
      const uint32_t la = off->Get(p + 1) - off->Get(p), lb = off->Get(id + 1) - off->Get(id);
      const int c = std::memcmp(b + off->Get(p), b + off->Get(id), std::min(la, lb));
      if (c > 0 || (c == 0 && la >= lb))
        return fail(err, Status::kCorrupt, "vocabulary: entries %u and %u are out of order", k - 1, k);
    }
  }
  impl->vocab_bytes = b;
  impl->vocab_offsets = off->data();
  if (need_sorted) {
    impl->vocab_sorted = sorted->data();
    impl->n_sorted = sorted->size();
  }
  impl->max_token_bytes = max_len;
  return Status::kOk;
}

// Checks a BPE tokenizer's tables: merges strictly sorted by (left, right) with ids in range, one
// token per byte holding exactly that byte, added tokens non-empty; byte-level: a split pattern; with
// byte fallback: the sorted character tokens, a token for every byte, no normalizer, a known prefix.
Status bind_bpe(const fb::Tokenizer* tk, bool fallback, TokenizerView* impl, Error* err) {
  Status s = bind_vocab(tk, /*need_sorted=*/fallback, impl, err);
  if (s != Status::kOk) return s;
  const uint32_t V = impl->vocab_size;
  const auto* merges = tk->merges();
  const auto* bt = tk->byte_tokens();
  const auto* added = tk->added_tokens();
  const bool pattern_ok = fallback ? !tk->split_pattern()
                                   : tk->split_pattern() && tk->split_pattern()->size() > 0 &&
                                         tk->split_pattern()->size() <= 4096;
  const bool normalizer_ok = fallback ? tk->normalizer() == fb::TextNormalizer::None
                                      : tk->normalizer() == fb::TextNormalizer::None ||
                                            tk->normalizer() == fb::TextNormalizer::Nfc;
  if (!merges || !bt || bt->size() != 256 || !pattern_ok || (added && added->size() > 4096) || !normalizer_ok ||
      tk->space_prefix() > fb::SpacePrefix::MAX || (!fallback && tk->space_prefix() != fb::SpacePrefix::None))
    return fail(err, Status::kCorrupt, "BPE tokenizer: missing or malformed tables");
  for (uint32_t k = 0; k < merges->size(); ++k) {
    const fb::BpeMerge* m = merges->Get(k);
    if (m->left() >= V || m->right() >= V || m->merged() >= V)
      return fail(err, Status::kCorrupt, "BPE tokenizer: merge %u names a token outside the vocabulary", k);
    if (k > 0) {
      const fb::BpeMerge* p = merges->Get(k - 1);
      if (p->left() > m->left() || (p->left() == m->left() && p->right() >= m->right()))
        return fail(err, Status::kCorrupt, "BPE tokenizer: merges %u and %u are out of order", k - 1, k);
    }
  }
  for (uint32_t c = 0; c < 256; ++c) {
    const uint32_t id = bt->Get(c);
    if (!fallback && id == 0xFFFFFFFFu && (c == 0xC0 || c == 0xC1 || c >= 0xF5)) continue;  // never in valid UTF-8
    if (id >= V || impl->vocab_offsets[id + 1] - impl->vocab_offsets[id] != 1 ||
        impl->vocab_bytes[impl->vocab_offsets[id]] != c)
      return fail(err, Status::kCorrupt, "BPE tokenizer: the token of byte %u is not that byte", c);
  }
  for (uint32_t k = 0; added && k < added->size(); ++k) {
    const uint32_t id = added->Get(k)->id();
    if (id >= V || impl->vocab_offsets[id + 1] == impl->vocab_offsets[id])
      return fail(err, Status::kCorrupt, "BPE tokenizer: added token %u (id %u) has no text", k, id);
  }
  impl->merges = merges->data();
  impl->n_merges = merges->size();
  impl->byte_tokens = bt->data();
  impl->space_prefix = static_cast<uint8_t>(tk->space_prefix());
  impl->split_before_space = fallback && tk->split_before_space();
  return Status::kOk;
}

}  // namespace

Status bind_tokenizer(const void* table, uint32_t vocab_size, TokenizerView* out, Error* err) {
  *out = TokenizerView();
  out->vocab_size = vocab_size;
  const auto* tk = static_cast<const fb::Tokenizer*>(table);
  if (!tk) return Status::kOk;
  out->table = tk;
  Status s = Status::kOk;
  switch (tk->kind()) {
    case fb::TokenizerKind::None:
      break;
    case fb::TokenizerKind::Bytes:
      if (vocab_size < 256)
        return fail(err, Status::kCorrupt, "byte tokenizer needs vocab >= 256, model has %u", vocab_size);
      break;
    case fb::TokenizerKind::World:
      s = bind_vocab(tk, /*need_sorted=*/true, out, err);
      break;
    case fb::TokenizerKind::Bpe:
    case fb::TokenizerKind::BpeByteFallback:
      s = bind_bpe(tk, tk->kind() == fb::TokenizerKind::BpeByteFallback, out, err);
      break;
    case fb::TokenizerKind::SentencePiece:  // the model bytes are checked by libsentencepiece when tokenizing
      if (!tk->sp_model() || tk->sp_model()->size() == 0)
        return fail(err, Status::kCorrupt, "SentencePiece tokenizer: the model bytes are missing");
      s = bind_vocab(tk, /*need_sorted=*/false, out, err);
      if (s == Status::kOk) out->sp_model = tk->sp_model()->data(), out->sp_model_bytes = tk->sp_model()->size();
      break;
    default:
      return fail(err, Status::kUnsupported, "tokenizer kind %u not supported (a newer rill wrote this file)",
                  static_cast<unsigned>(tk->kind()));
  }
  if (s != Status::kOk) return s;
  out->kind = static_cast<TokenizerKind>(tk->kind());
  return Status::kOk;
}

}  // namespace rill
