// rill tokenize, rill logits and rill eval: a model's tokenizer, its logits over a token sequence, and
// its bits per byte on a text.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common.h"
#include "core/model_impl.h"
#include "core/tokenizer_view.h"
#include "npy.h"
#include "rill/convert.hpp"
#include "rill_generated.h"

namespace rill {
namespace cli {

namespace {

// Escapes bytes for one line: printable ASCII as is, \n \r \t, other bytes as \xHH (a UTF-8 character
// is kept whole when complete).
std::string escape_piece(const std::string& p) {
  std::string out;
  for (size_t i = 0; i < p.size(); ++i) {
    const auto c = static_cast<unsigned char>(p[i]);
    char buf[8];
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == '\\') out += "\\\\";
    else if (c >= 0x20 && c < 0x7F) out += static_cast<char>(c);
    else {
      const size_t need = c >= 0xF0 && c < 0xF8 ? 4 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
      bool whole = need && i + need <= p.size();
      for (size_t k = 1; whole && k < need; ++k) whole = (static_cast<unsigned char>(p[i + k]) & 0xC0) == 0x80;
      if (whole) {
        out.append(p, i, need);
        i += need - 1;
      } else {
        std::snprintf(buf, sizeof buf, "\\x%02X", c);
        out += buf;
      }
    }
  }
  return out;
}

}  // namespace

int cmd_tokenize(int argc, char** argv) {
  Args a{"tokenize", "(MODEL.rill | --tokenizer FILE) (--prompt TEXT | --text FILE | --decode IDS) [options]",
         "Text -> token ids with a model's embedded tokenizer, or with a tokenizer file (a Hugging Face\n"
         "tokenizer.json or an RWKV world vocabulary) before any model exists. Prints the ids comma-separated\n"
         "on one line; --pieces prints one token a line with its text; --decode turns ids back into text.",
         "rill tokenize --tokenizer tokenizer.json --prompt \"Hello world\"",
         {model_opt(), {nullptr, "--tokenizer", "FILE", "tokenizer.json or rwkv_vocab_*.txt instead of a model", ""},
          {"-p", "--prompt", "TEXT", "text to tokenize", ""},
          {nullptr, "--text", "FILE", "tokenize this file's bytes", ""},
          {nullptr, "--decode", "IDS", "comma-separated ids to turn back into text", ""},
          {nullptr, "--pieces", nullptr, "one token a line: id, then its text (escaped)", ""},
          {"-q", "--quiet", nullptr, "no count and speed line on stderr", ""}}};
  if (int r = a.parse(argc, argv)) return r == 1 ? 0 : r;
  const int inputs = (a.flag("--prompt") ? 1 : 0) + (a.flag("--text") ? 1 : 0) + (a.flag("--decode") ? 1 : 0);
  if (inputs != 1) {
    std::fprintf(stderr, "rill tokenize: give one of --prompt TEXT, --text FILE or --decode IDS\nexample: %s\n",
                 a.example);
    return 2;
  }
  // The tokenizer: a model's, or one file's read into a tokenizer-only buffer.
  LoadedModel lm;
  std::string buf;
  TokenizerView tv;
  if (a.flag("--tokenizer")) {
    if (!a.positional.empty() || a.flag("--model")) {
      std::fprintf(stderr, "rill tokenize: give a model or --tokenizer FILE, not both\n");
      return 2;
    }
    uint32_t vocab = 0;
    try {
      buf = convert::tokenizer_buffer(a.get("--tokenizer"), &vocab);
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "rill tokenize: %s\n", ex.what());
      return 1;
    }
    flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(buf.data()), buf.size());
    Error e;
    if (!fb::VerifyModelBuffer(v) ||
        bind_tokenizer(fb::GetModel(buf.data())->tokenizer(), vocab, &tv, &e) != Status::kOk) {
      std::fprintf(stderr, "rill tokenize: %s: %s\n", a.get("--tokenizer").c_str(), e.message);
      return 1;
    }
  } else {
    if (int r = open_model(a, &lm, Takes::kTokens)) return r;
    tv = lm.model().impl()->tok;
    if (tv.kind == TokenizerKind::kNone) {
      std::fprintf(stderr, "rill tokenize: this model has no tokenizer (convert it with --tokenizer FILE)\n");
      return 1;
    }
  }
  if (a.flag("--decode")) {
    std::vector<int32_t> ids;
    if (!parse_tokens(a.get("--decode"), &ids)) {
      std::fprintf(stderr, "rill tokenize: --decode wants comma-separated integers\n");
      return 2;
    }
    std::string out;
    for (int32_t id : ids) {
      char piece[8192];
      size_t n = 0;
      const Status st = detokenize_view(tv, id, piece, sizeof piece, &n);
      if (st != Status::kOk) {
        std::fprintf(stderr, "rill tokenize: token %d: %s (the vocabulary has %u ids)\n", id, status_str(st),
                     tv.vocab_size);
        return 1;
      }
      out.append(piece, n);
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    if (isatty(1)) std::printf("\n");
    return 0;
  }
  std::string text = a.get("--prompt");
  if (a.flag("--text") && !read_whole_file(a.get("--text"), &text)) {
    std::fprintf(stderr, "rill tokenize: cannot read %s\n", a.get("--text").c_str());
    return 1;
  }
  const double t0 = now_s();
  size_t n = 0;
  Status st = tokenize_view(tv, text.data(), text.size(), nullptr, 0, &n);
  std::vector<int32_t> ids(n);
  if (st == Status::kOk || (st == Status::kInvalidArgument && n > 0))
    st = tokenize_view(tv, text.data(), text.size(), ids.data(), ids.size(), &n);
  const double dt = now_s() - t0;
  if (st != Status::kOk) {
    const char* why = st == Status::kUnsupported ? "this build cannot tokenize with this kind of tokenizer"
                      : tv.kind == TokenizerKind::kBpe ? "the text is not valid UTF-8"
                      : tv.kind == TokenizerKind::kWorld ? "a byte of the text has no token"
                                                         : "cannot tokenize";
    std::fprintf(stderr, "rill tokenize: %s (%s)\n", why, status_str(st));
    return 1;
  }
  if (a.flag("--pieces")) {
    for (int32_t id : ids) {
      char piece[8192];
      size_t k = 0;
      (void)detokenize_view(tv, id, piece, sizeof piece, &k);
      std::printf("%d\t%s\n", id, escape_piece(std::string(piece, k)).c_str());
    }
  } else {
    std::printf("%s\n", join(ids, ",").c_str());
  }
  if (!a.flag("--quiet"))
    std::fprintf(stderr, "[%zu bytes -> %zu tokens (%.2f bytes/token) in %.1f ms, %.1f MB/s]\n", text.size(), ids.size(),
                 ids.empty() ? 0.0 : static_cast<double>(text.size()) / ids.size(), dt * 1e3,
                 text.size() / std::max(dt, 1e-9) / 1e6);
  return 0;
}

int cmd_logits(int argc, char** argv) {
  Args a{"logits", "MODEL.rill (--tokens IDS | --text TEXT) -o OUT.npy",
         "Step the model over the tokens and write every step's logits as float32 [T, vocab] .npy,\n"
         "for comparing a conversion with the source framework (numpy.load).",
         "rill logits demo.rill --tokens 72,101,108,108,111 -o logits.npy",
         {model_opt(),
          {nullptr, "--tokens", "IDS", "comma-separated token ids", ""},
          {nullptr, "--text", "TEXT", "text, tokenized with the model's tokenizer", ""},
          {"-o", "--output", "FILE", "output .npy file", ""}, backend_opt(), device_opt(), context_opt()}};
  if (int r = a.parse(argc, argv)) return r == 1 ? 0 : r;
  LoadedModel lm;
  if (int r = open_model(a, &lm, Takes::kTokens)) return r;
  const ModelInfo info = lm.model().info();
  std::vector<int32_t> toks;
  if (a.flag("--tokens")) {
    if (!parse_tokens(a.get("--tokens"), &toks)) {
      std::fprintf(stderr, "rill logits: --tokens wants comma-separated integers\n");
      return 2;
    }
  } else if (a.flag("--text") && text_to_tokens(lm.model(), a.get("--text"), &toks)) {
  } else {
    std::fprintf(stderr, "rill logits: give --tokens (or --text for a model with a tokenizer)\nexample: %s\n", a.example);
    return 2;
  }
  if (a.get("--output").empty()) {
    std::fprintf(stderr, "rill logits: -o OUT.npy is required\nexample: %s\n", a.example);
    return 2;
  }
  OwnedSession os;
  Error e;
  if (OwnedSession::create(lm.model(), SessionOptions{}, &os, &e) != Status::kOk) return report(e, "session");
  const size_t V = info.vocab_size;
  std::vector<float> all(toks.size() * V);
  for (size_t t = 0; t < toks.size(); ++t) {
    const Status s = os.session().step(toks[t], all.data() + t * V, V);
    if (s != Status::kOk) {
      std::fprintf(stderr, "rill logits: token %zu (id %d): %s (vocab is %zu)\n", t, toks[t], status_str(s), V);
      return 1;
    }
  }
  std::string why;
  if (!npy::write(a.get("--output"), all.data(), {toks.size(), V}, &why)) {
    std::fprintf(stderr, "rill logits: %s\n", why.c_str());
    return 1;
  }
  std::fprintf(stderr, "wrote %s: float32 [%zu, %zu]\n", a.get("--output").c_str(), toks.size(), V);
  return 0;
}

int cmd_eval(int argc, char** argv) {
  Args a{"eval", "MODEL.rill --text FILE [options]",
         "Bits per byte and perplexity on a text file: the text is tokenized with the model's tokenizer and\n"
         "stepped from an empty state; bits per byte = sum of -log2 p(next token) / bytes of the predicted\n"
         "tokens; perplexity = 2^(sum of -log2 p / predicted tokens), per token of this model's tokenizer.",
         "rill eval demo.rill --text examples/demo_model/heldout.txt",
         {model_opt(), {nullptr, "--text", "FILE", "text file to score", ""},
          {nullptr, "--max-bytes", "N", "score at most N bytes; 0 = all", "0"},
          {nullptr, "--window", "N", "reset the state every N tokens (score independent windows); 0 = one stream", "0"},
          threads_opt(), backend_opt(), device_opt(),
          {"-q", "--quiet", nullptr, "no progress", ""}}};
  if (int r = a.parse(argc, argv)) return r == 1 ? 0 : r;
  LoadedModel lm;
  if (int r = open_model(a, &lm, Takes::kTokens)) return r;
  const ModelInfo info = lm.model().info();
  if (info.tokenizer == TokenizerKind::kNone) {
    std::fprintf(stderr, "rill eval: this model has no tokenizer; bits per byte needs one\n");
    return 1;
  }
  long long max_bytes, window;
  if (a.get("--text").empty()) {
    std::fprintf(stderr, "rill eval: need --text FILE\nexample: %s\n", a.example);
    return 2;
  }
  if (!int_option(a, "--max-bytes", 0, 1ll << 50, &max_bytes) || !int_option(a, "--window", 0, 1ll << 50, &window))
    return 2;
  if (window == 1) {
    std::fprintf(stderr, "rill eval: --window 1 leaves no token to predict in a window (0: one stream, or 2 and more)\n");
    return 2;
  }
  std::string text;
  if (!read_whole_file(a.get("--text"), &text)) {
    std::fprintf(stderr, "rill eval: cannot open %s\n", a.get("--text").c_str());
    return 1;
  }
  if (max_bytes > 0 && text.size() > static_cast<size_t>(max_bytes)) text.resize(static_cast<size_t>(max_bytes));
  std::vector<int32_t> toks;
  if (!text_to_tokens(lm.model(), text, &toks)) {
    std::fprintf(stderr, "rill eval: the text cannot be tokenized with this model's vocabulary\n");
    return 1;
  }
  if (toks.size() < 2) {
    std::fprintf(stderr, "rill eval: text needs at least 2 tokens\n");
    return 1;
  }
  ThreadPool* pool = nullptr;
  OwnedSession os;
  if (int r = make_session(a, lm.model(), &pool, &os)) return r;
  std::vector<float> logits(info.vocab_size);
  // Byte models: only the 256 byte ids are text; others: the whole vocabulary.
  const size_t n_valid = info.tokenizer == TokenizerKind::kBytes ? 256 : info.vocab_size;
  double bits = 0;
  size_t scored_bytes = 0, scored = 0;
  const double t0 = now_s();
  const bool tty = isatty(2) && !a.flag("--quiet");
  install_sigint();
  for (size_t i = 0; i + 1 < toks.size() && !g_interrupted; ++i) {
    if (window > 0 && i % static_cast<size_t>(window) == 0) os.session().reset();
    (void)os.session().step(toks[i], logits.data(), logits.size());
    float mx = logits[0];
    for (size_t v = 1; v < n_valid; ++v) mx = std::max(mx, logits[v]);
    double z = 0;
    for (size_t v = 0; v < n_valid; ++v) z += std::exp(static_cast<double>(logits[v] - mx));
    bits += (std::log(z) + mx - logits[toks[i + 1]]) / std::log(2.0);
    char piece[4096];
    size_t len = 0;
    (void)detokenize(lm.model(), toks[i + 1], piece, sizeof piece, &len);
    scored_bytes += len;
    ++scored;
    if (tty && (i % 4096 == 0))
      std::fprintf(stderr, "\r  %zu/%zu tokens, %.4f bits/byte", i, toks.size() - 1,
                   bits / static_cast<double>(std::max<size_t>(scored_bytes, 1)));
  }
  if (tty) std::fprintf(stderr, "\r%-60s\r", "");
  const double dt = now_s() - t0;
  const char* tk_name = info.tokenizer == TokenizerKind::kBytes ? "bytes"
                        : info.tokenizer == TokenizerKind::kWorld ? "world"
                        : info.tokenizer == TokenizerKind::kSentencePiece ? "sentencepiece"
                        : info.tokenizer == TokenizerKind::kBpeByteFallback ? "byte-fallback BPE"
                                                                  : "bpe";
  std::printf("%.4f bits/byte, perplexity %.3f per %s token, over %zu bytes (%zu tokens) of %s",
              bits / static_cast<double>(std::max<size_t>(scored_bytes, 1)),
              std::exp2(bits / static_cast<double>(std::max<size_t>(scored, 1))), tk_name, scored_bytes, scored,
              a.get("--text").c_str());
  if (window > 0) std::printf(" in windows of %lld tokens", window);
  std::printf(" (%.0f tokens/s)\n", scored / dt);
  ThreadPool::destroy(pool);
  return g_interrupted ? 130 : 0;
}

}  // namespace cli
}  // namespace rill
