// Text -> token ids with the model's embedded tokenizer. Part of the extension, not the core: BPE
// allocates (NFC with utf8proc, the split pattern with PCRE2, the merge queue). The byte and world
// tokenizers only read the model's tables.
//
// SentencePiece runs the embedded model through libsentencepiece (Debian's libsentencepiece-dev).
//
// BPE follows the Hugging Face tokenizers library on a byte-level tokenizer.json:
//   1. added tokens with normalized = false are matched on the raw text, leftmost-longest;
//   2. each stretch between them is normalized (NFC), then added tokens with normalized = true are
//      matched in it, leftmost-longest;
//   3. what remains is split by the pattern (matches and the gaps between them are words);
//   4. each word's bytes start as single-byte tokens; the adjacent pair with the lowest merge rank
//      merges first (leftmost on ties), until no pair has a merge.
//
// BPE with byte fallback follows the same library on a tokenizer.json that is a SentencePiece model
// rewritten (Llama's): stage 1 as above; each stretch has U+2581 read as a space and takes a space in
// front as the file's SpacePrefix says (the Prepend normalizer before stage 2, the Metaspace
// pre-tokenizer after it); no split: each stretch (between added tokens) is one word, whose symbols
// start as each character's token or, for a character the vocabulary lacks, its bytes' <0xNN> tokens;
// then stage 4.
#include <algorithm>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#if defined(RILL_HAVE_SENTENCEPIECE)
#include <memory>
#include <sentencepiece_processor.h>
#endif

#if defined(RILL_HAVE_TEXT)
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>
#endif

#include "format/views.h"

namespace rill {

namespace {

// Counts every id, stores those that fit.
struct Out {
  int32_t* p;
  size_t cap;
  size_t n = 0;
  void push(uint32_t id) {
    if (n < cap) p[n] = static_cast<int32_t>(id);
    ++n;
  }
};

// ---- world: greedy longest byte match ----------------------------------------------------------
// The tokens that start with text[i, i+k) are one range of the sorted vocabulary. Each further byte
// narrows it by two binary searches; a range whose first token is exactly k bytes long holds a match
// of length k. The last match found is the longest.
Status tokenize_world(const TokenizerView& m, const uint8_t* t, size_t len, Out* out) {
  const uint32_t* sorted = m.vocab_sorted;
  const uint32_t* off = m.vocab_offsets;
  const uint8_t* vb = m.vocab_bytes;
  size_t i = 0;
  while (i < len) {
    uint32_t lo = 0, hi = m.n_sorted, best_id = 0;
    size_t best = 0;
    const size_t limit = std::min<size_t>(len - i, m.max_token_bytes);
    for (size_t k = 1; k <= limit && lo < hi; ++k) {
      const uint8_t c = t[i + k - 1];
      // Within [lo, hi) every token shares the first k-1 bytes; key = its k-th byte, or -1 if it has
      // only k-1 bytes (it sorts first). The keys do not decrease.
      auto key = [&](uint32_t idx) -> int {
        const uint32_t id = sorted[idx];
        return off[id + 1] - off[id] < k ? -1 : vb[off[id] + k - 1];
      };
      uint32_t a = lo, b = hi;
      while (a < b) {  // first key >= c
        const uint32_t mid = a + (b - a) / 2;
        if (key(mid) < c) a = mid + 1;
        else b = mid;
      }
      uint32_t e = a, f = hi;
      while (e < f) {  // first key > c
        const uint32_t mid = e + (f - e) / 2;
        if (key(mid) <= c) e = mid + 1;
        else f = mid;
      }
      lo = a;
      hi = e;
      if (lo < hi && off[sorted[lo] + 1] - off[sorted[lo]] == k) {
        best = k;
        best_id = sorted[lo];
      }
    }
    if (best == 0) return Status::kInvalidArgument;  // a byte no token covers
    out->push(best_id);
    i += best;
  }
  return Status::kOk;
}

#if defined(RILL_HAVE_TEXT)
// ---- BPE ---------------------------------------------------------------------------------------
// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), as a Rust String is.
bool valid_utf8(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t k;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) k = 1, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) k = 2, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) k = 3, cp = c & 0x07, min = 0x10000;
    else return false;
    if (n - i <= k) return false;
    for (size_t j = 1; j <= k; ++j) {
      if ((s[i + j] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += k + 1;
  }
  return true;
}

// Compiled split patterns, shared by every model and thread (a compiled PCRE2 pattern is read-only).
class PatternCache {
 public:
  ~PatternCache() {
    for (auto& e : entries_) pcre2_code_free(e.second);
  }
  // Null if the pattern does not compile (or memory ran out).
  const pcre2_code* get(const char* pat, size_t len) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& e : entries_)
      if (e.first.size() == len && std::memcmp(e.first.data(), pat, len) == 0) return e.second;
    int code = 0;
    PCRE2_SIZE at = 0;
    pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat), len, PCRE2_UTF | PCRE2_UCP, &code, &at, nullptr);
    if (!re) return nullptr;
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);  // the interpreter serves if JIT is unavailable
    entries_.emplace_back(std::string(pat, len), re);
    return re;
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<std::string, pcre2_code*>> entries_;
};

PatternCache& pattern_cache() {
  static PatternCache cache;
  return cache;
}

struct Literal {  // an added token: its bytes and id
  const uint8_t* p;
  uint32_t n, id;
};

// The longest literal starting at s (null if none). `lits` is sorted by length, longest first.
const Literal* match_literal(const std::vector<Literal>& lits, const uint8_t* s, size_t n) {
  for (const Literal& l : lits)
    if (l.n <= n && std::memcmp(s, l.p, l.n) == 0) return &l;
  return nullptr;
}

class Bpe {
 public:
  Bpe(const TokenizerView& m, Out* out)
      : m_(m), merges_(static_cast<const fb::BpeMerge*>(m.merges)), out_(out) {
    const fb::Tokenizer* tk = static_cast<const fb::Tokenizer*>(m.table);
    if (const auto* added = tk->added_tokens())
      for (const fb::AddedToken* a : *added) {
        const uint32_t id = a->id(), b = m.vocab_offsets[id], n = m.vocab_offsets[id + 1] - b;
        (a->normalized() ? norm_lits_ : raw_lits_).push_back({m.vocab_bytes + b, n, id});
      }
    for (auto* v : {&raw_lits_, &norm_lits_}) {
      std::stable_sort(v->begin(), v->end(), [](const Literal& x, const Literal& y) { return x.n > y.n; });
      for (const Literal& l : *v) (v == &raw_lits_ ? raw_first_ : norm_first_)[l.p[0]] = true;
    }
    nfc_ = tk->normalizer() == fb::TextNormalizer::Nfc;
    pattern_ = tk->split_pattern();
    fallback_ = m.kind == TokenizerKind::kBpeByteFallback;
    prefix_ = static_cast<fb::SpacePrefix>(m.space_prefix);
  }

  Status run(const uint8_t* t, size_t len) {
    if (!valid_utf8(t, len) || len >= (size_t(1) << 30)) return Status::kInvalidArgument;  // symbols: int32
    text_ = t;
    if (fallback_) return split_literals(t, len, raw_lits_, raw_first_, /*normalized=*/false);
    re_ = pattern_cache().get(pattern_->c_str(), pattern_->size());
    if (!re_) return Status::kCorrupt;  // the file's pattern does not compile
    md_ = pcre2_match_data_create_from_pattern(re_, nullptr);
    if (!md_) return Status::kOutOfMemory;
    Status s = split_literals(t, len, raw_lits_, raw_first_, /*normalized=*/false);
    pcre2_match_data_free(md_);
    md_ = nullptr;
    return s;
  }

 private:
  // Splits [t, t+len) at the literals of `lits`; the stretches between go on to the next stage.
  Status split_literals(const uint8_t* t, size_t len, const std::vector<Literal>& lits, const bool* first,
                        bool normalized) {
    size_t start = 0;
    for (size_t i = 0; i < len;) {
      const Literal* l = first[t[i]] ? match_literal(lits, t + i, len - i) : nullptr;
      if (!l) {
        ++i;
        continue;
      }
      if (i > start) {
        Status s = normalized ? split_words(t + start, i - start) : normalize(t + start, i - start);
        if (s != Status::kOk) return s;
      }
      out_->push(l->id);
      i += l->n;
      start = i;
    }
    if (start < len) return normalized ? split_words(t + start, len - start) : normalize(t + start, len - start);
    return Status::kOk;
  }

  Status normalize(const uint8_t* t, size_t len) {
    if (fallback_) {  // U+2581 as a space; the Prepend normalizer's space
      stretch_.clear();
      if (prefix_ == fb::SpacePrefix::Always && len) stretch_ += ' ';
      for (size_t i = 0; i < len; ++i) {
        if (i + 2 < len && t[i] == 0xE2 && t[i + 1] == 0x96 && t[i + 2] == 0x81) {
          stretch_ += ' ';
          i += 2;
        } else {
          stretch_ += static_cast<char>(t[i]);
        }
      }
      at_start_ = t == text_;
      const auto* s = reinterpret_cast<const uint8_t*>(stretch_.data());
      stretch_begin_ = s;
      return split_literals(s, stretch_.size(), norm_lits_, norm_first_, true);
    }
    if (!nfc_) return split_literals(t, len, norm_lits_, norm_first_, true);
    utf8proc_uint8_t* nfc = nullptr;
    const utf8proc_ssize_t n =
        utf8proc_map(t, static_cast<utf8proc_ssize_t>(len), &nfc, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (n < 0) return n == UTF8PROC_ERROR_NOMEM ? Status::kOutOfMemory : Status::kInvalidArgument;
    Status s = split_literals(nfc, static_cast<size_t>(n), norm_lits_, norm_first_, true);
    std::free(nfc);
    return s;
  }

  // The pattern's matches and the gaps between them are words; with byte fallback the stretch is one,
  // with the Metaspace pre-tokenizer's space in front where the file's SpacePrefix says.
  Status split_words(const uint8_t* t, size_t len) {
    if (fallback_) {
      const bool space = len && t[0] == ' ';
      if ((prefix_ == fb::SpacePrefix::UnlessSpace && !space) ||
          (prefix_ == fb::SpacePrefix::FirstUnlessSpace && !space && at_start_ && t == stretch_begin_)) {
        word_.assign(1, ' ');
        word_.append(reinterpret_cast<const char*>(t), len);
        fallback_words(reinterpret_cast<const uint8_t*>(word_.data()), word_.size());
      } else {
        fallback_words(t, len);
      }
      return Status::kOk;
    }
    size_t start = 0;
    while (start < len) {
      const int rc = pcre2_match(re_, t, len, start, PCRE2_NO_UTF_CHECK, md_, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) return rc == PCRE2_ERROR_NOMEMORY ? Status::kOutOfMemory : Status::kInvalidArgument;
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md_);
      if (ov[0] > start) word(t + start, ov[0] - start);
      if (ov[1] == ov[0]) {  // an empty match: the next code point joins the gap
        size_t e = ov[0] + 1;
        while (e < len && (t[e] & 0xC0) == 0x80) ++e;
        word(t + ov[0], e - ov[0]);
        start = e;
        continue;
      }
      word(t + ov[0], ov[1] - ov[0]);
      start = ov[1];
    }
    if (start < len) word(t + start, len - start);
    return Status::kOk;
  }

  // The merge of adjacent tokens (l, r), or null.
  const fb::BpeMerge* find_merge(uint32_t l, uint32_t r) const {
    uint32_t lo = 0, hi = m_.n_merges;
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo) / 2;
      const fb::BpeMerge& g = merges_[mid];
      if (g.left() < l || (g.left() == l && g.right() < r)) lo = mid + 1;
      else hi = mid;
    }
    return lo < m_.n_merges && merges_[lo].left() == l && merges_[lo].right() == r ? &merges_[lo] : nullptr;
  }

  // The token whose bytes are exactly [c, c + n) among the character-sequence tokens, or kNone.
  static constexpr uint32_t kNone = 0xFFFFFFFFu;
  uint32_t char_token(const uint8_t* c, size_t n) const {
    const uint32_t* sorted = m_.vocab_sorted;
    const uint32_t* off = m_.vocab_offsets;
    uint32_t lo = 0, hi = m_.n_sorted;
    while (lo < hi) {  // the first token >= c
      const uint32_t mid = lo + (hi - lo) / 2, id = sorted[mid], len = off[id + 1] - off[id];
      const int cmp = std::memcmp(m_.vocab_bytes + off[id], c, std::min<size_t>(len, n));
      if (cmp < 0 || (cmp == 0 && len < n)) lo = mid + 1;
      else hi = mid;
    }
    if (lo == m_.n_sorted) return kNone;
    const uint32_t id = sorted[lo];
    return off[id + 1] - off[id] == n && std::memcmp(m_.vocab_bytes + off[id], c, n) == 0 ? id : kNone;
  }

  // The ids of a word this call has merged before, pushed out; false if it has not.
  bool from_cache(const uint8_t* w, size_t n) {
    auto hit = cache_.find(std::string(reinterpret_cast<const char*>(w), n));
    if (hit == cache_.end()) return false;
    for (uint32_t id : hit->second) out_->push(id);
    return true;
  }

  // A byte-fallback stretch: one word, or, where the file allows it (split_before_space), words cut
  // before each space that follows another character, which no merge can join across.
  void fallback_words(const uint8_t* t, size_t len) {
    size_t start = 0;
    for (size_t i = 1; m_.split_before_space && i < len; ++i)
      if (t[i] == ' ' && t[i - 1] != ' ') {
        char_word(t + start, i - start);
        start = i;
      }
    char_word(t + start, len - start);
  }

  // A byte-fallback word: each character's token, or its bytes' tokens (valid UTF-8: checked in run).
  void char_word(const uint8_t* w, size_t n) {
    if (n == 0) return;
    if (from_cache(w, n)) return;
    sym_.clear();
    for (size_t i = 0; i < n;) {
      const uint8_t c = w[i];
      const size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
      const uint32_t id = char_token(w + i, len);
      if (id != kNone) sym_.push_back({id, 0, 0, true});
      else
        for (size_t k = 0; k < len; ++k) sym_.push_back({m_.byte_tokens[w[i + k]], 0, 0, true});
      i += len;
    }
    merge_symbols(std::string(reinterpret_cast<const char*>(w), n));
  }

  void word(const uint8_t* w, size_t n) {
    if (n == 1) {
      out_->push(m_.byte_tokens[w[0]]);
      return;
    }
    if (from_cache(w, n)) return;
    sym_.resize(n);
    for (size_t i = 0; i < n; ++i) sym_[i] = {m_.byte_tokens[w[i]], 0, 0, true};
    merge_symbols(std::string(reinterpret_cast<const char*>(w), n));
  }

  // sym_ (ids) merged by rank; the ids go out and into the cache under `key`. Symbols in a linked list;
  // candidate merges in a min-heap on (rank, position).
  void merge_symbols(std::string key) {
    const size_t n = sym_.size();
    for (size_t i = 0; i < n; ++i)
      sym_[i].prev = static_cast<int32_t>(i) - 1, sym_[i].next = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
    heap_.clear();
    auto consider = [&](int32_t pos) {
      const int32_t nx = sym_[pos].next;
      if (nx < 0) return;
      if (const fb::BpeMerge* g = find_merge(sym_[pos].id, sym_[nx].id)) {
        heap_.push_back({g->rank(), static_cast<uint32_t>(pos)});
        std::push_heap(heap_.begin(), heap_.end(), std::greater<Cand>());
      }
    };
    for (size_t i = 0; i + 1 < n; ++i) consider(static_cast<int32_t>(i));
    while (!heap_.empty()) {
      std::pop_heap(heap_.begin(), heap_.end(), std::greater<Cand>());
      const Cand c = heap_.back();
      heap_.pop_back();
      Sym& a = sym_[c.pos];
      if (!a.alive || a.next < 0) continue;
      const fb::BpeMerge* g = find_merge(a.id, sym_[a.next].id);
      if (!g || g->rank() != c.rank) continue;  // stale: a neighbour merged since
      Sym& b = sym_[a.next];
      a.id = g->merged();
      b.alive = false;
      a.next = b.next;
      if (a.next >= 0) sym_[a.next].prev = static_cast<int32_t>(c.pos);
      if (a.prev >= 0) consider(a.prev);
      consider(static_cast<int32_t>(c.pos));
    }
    std::vector<uint32_t> ids;
    for (int32_t i = 0; i >= 0; i = sym_[i].next) ids.push_back(sym_[i].id);
    for (uint32_t id : ids) out_->push(id);
    if (cache_.size() < 65536) cache_.emplace(std::move(key), std::move(ids));
  }

  struct Sym {
    uint32_t id;
    int32_t prev, next;
    bool alive;
  };
  struct Cand {
    uint32_t rank, pos;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };

  const TokenizerView& m_;
  const fb::BpeMerge* merges_;
  Out* out_;
  std::vector<Literal> raw_lits_, norm_lits_;
  bool raw_first_[256] = {}, norm_first_[256] = {};
  bool nfc_ = false;
  bool fallback_ = false;  // BPE with byte fallback
  fb::SpacePrefix prefix_ = fb::SpacePrefix::None;
  const uint8_t* text_ = nullptr;           // the text run() was given
  const uint8_t* stretch_begin_ = nullptr;  // byte fallback: the prepared stretch (stretch_)
  bool at_start_ = false;                   // ... which begins the text
  std::string stretch_, word_;
  const flatbuffers::String* pattern_ = nullptr;
  const pcre2_code* re_ = nullptr;
  pcre2_match_data* md_ = nullptr;
  std::vector<Sym> sym_;
  std::vector<Cand> heap_;
  std::unordered_map<std::string, std::vector<uint32_t>> cache_;  // word -> ids, within one call
};
#endif  // RILL_HAVE_TEXT

#if defined(RILL_HAVE_SENTENCEPIECE)
// SentencePiece: the embedded model loaded into libsentencepiece once per process and kept, keyed by
// its bytes (a hash, then a full compare), so models that share a tokenizer share one processor.
class SpmCache {
 public:
  const sentencepiece::SentencePieceProcessor* get(const uint8_t* p, size_t n) {
    const std::string_view bytes(reinterpret_cast<const char*>(p), n);
    const size_t h = std::hash<std::string_view>()(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    for (const Entry& e : entries_)
      if (e.hash == h && e.bytes == bytes) return e.proc.get();
    auto proc = std::make_unique<sentencepiece::SentencePieceProcessor>();
    if (!proc->LoadFromSerializedProto(bytes).ok()) return nullptr;
    entries_.push_back(Entry{h, std::string(bytes), std::move(proc)});
    return entries_.back().proc.get();
  }

 private:
  struct Entry {
    size_t hash;
    std::string bytes;
    std::unique_ptr<sentencepiece::SentencePieceProcessor> proc;
  };
  std::mutex mu_;
  std::vector<Entry> entries_;
};

Status tokenize_spm(const TokenizerView& tv, const uint8_t* t, size_t len, Out* out) {
  static SpmCache cache;
  const sentencepiece::SentencePieceProcessor* sp = cache.get(tv.sp_model, tv.sp_model_bytes);
  if (!sp) return Status::kCorrupt;  // the embedded model does not parse
  std::vector<int> ids;
  if (!sp->Encode(std::string_view(reinterpret_cast<const char*>(t), len), &ids).ok()) return Status::kInvalidArgument;
  for (int id : ids) {
    if (id < 0 || static_cast<uint32_t>(id) >= tv.vocab_size) return Status::kCorrupt;
    out->push(static_cast<uint32_t>(id));
  }
  return Status::kOk;
}
#endif  // RILL_HAVE_SENTENCEPIECE

}  // namespace

Status tokenize_view(const TokenizerView& tv, const char* text, size_t len, int32_t* out, size_t cap, size_t* n_out) {
  if ((len && !text) || !n_out || (cap && !out)) return Status::kInvalidArgument;
  const auto* t = reinterpret_cast<const uint8_t*>(text);
  Out o{out, cap};
  Status s = Status::kOk;
  switch (tv.kind) {
    case TokenizerKind::kBytes:
      for (size_t i = 0; i < len; ++i) o.push(t[i]);
      break;
    case TokenizerKind::kWorld:
      s = tokenize_world(tv, t, len, &o);
      break;
    case TokenizerKind::kBpe:
    case TokenizerKind::kBpeByteFallback:
#if defined(RILL_HAVE_TEXT)
      try {
        Bpe bpe(tv, &o);
        s = bpe.run(t, len);
      } catch (const std::bad_alloc&) {
        s = Status::kOutOfMemory;
      }
      break;
#else
      return Status::kUnsupported;  // built without PCRE2 and utf8proc
#endif
    case TokenizerKind::kSentencePiece:
#if defined(RILL_HAVE_SENTENCEPIECE)
      try {
        s = tokenize_spm(tv, t, len, &o);
      } catch (const std::bad_alloc&) {
        s = Status::kOutOfMemory;
      }
      break;
#else
      return Status::kUnsupported;  // built without libsentencepiece
#endif
    default:
      return Status::kUnsupported;
  }
  *n_out = o.n;
  if (s != Status::kOk) return s;
  return o.n <= cap ? Status::kOk : Status::kInvalidArgument;
}

Status tokenize(const Model& model, const char* text, size_t len, int32_t* out, size_t cap, size_t* n_out) {
  if (!model.ok()) return Status::kBadState;
  return tokenize_view(model.impl()->tok, text, len, out, cap, n_out);
}

}  // namespace rill
