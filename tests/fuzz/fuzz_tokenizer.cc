// libFuzzer: tokenizer on arbitrary bytes. Tokenize with a too-small then an exact buffer; every
// token detokenizes; the bytes round-trip exactly (bytes, world). BPE (GPT-NeoX's tokenizer.json):
// either a clean refusal or tokens whose text tokenizes to the same tokens (decoding gives the NFC
// form), and ASCII comes back exactly. SentencePiece (the RecurrentGemma fixture's model, byte
// fallback, identity normalization): printable ASCII comes back exactly; anything else at least
// gives ids that detokenize. BPE with byte fallback (that model rewritten as a tokenizer.json): either
// "not UTF-8" or ids that detokenize, and printable ASCII without '<' (no special token) comes back.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "rill/convert.hpp"
#include "rill/extension.hpp"

using namespace rill;

namespace {
LoadedModel* g_model;  // byte tokenizer
LoadedModel* g_world;  // RWKV world vocabulary (does not cover every byte)
LoadedModel* g_bpe;    // GPT-NeoX byte-level BPE
LoadedModel* g_spm;    // SentencePiece
LoadedModel* g_bf;     // BPE with byte fallback
void load(const std::string& ckpt, const char* name, LoadedModel* lm, TokenizerKind want) {
  char dir[] = "/tmp/rill-fuzz-XXXXXX";
  if (!mkdtemp(dir)) std::abort();
  convert::Options o;
  o.input_dir = ckpt;
  o.output = std::string(dir) + "/" + name;
  o.quiet = true;
  convert::run(o);
  if (LoadedModel::open(o.output.c_str(), ModelOptions{}, lm) != Status::kOk) std::abort();
  if (lm->model().info().tokenizer != want) std::abort();
}
void setup() {
  static LoadedModel bytes, world, bpe, spm, bf;
  load(std::string(RILL_SOURCE_DIR) + "/tests/golden/recurrent_gemma_tied_bf16", "s.rill", &spm,
       TokenizerKind::kSentencePiece);
  g_spm = &spm;
  {
    char bdir[] = "/tmp/rill-fuzz-XXXXXX";
    if (!mkdtemp(bdir)) std::abort();
    const std::string ck = std::string(bdir) + "/bf";
    std::filesystem::copy(std::string(RILL_SOURCE_DIR) + "/tests/golden/recurrent_gemma_tied_bf16", ck);
    std::filesystem::remove(ck + "/tokenizer.model");
    std::filesystem::copy_file(std::string(RILL_SOURCE_DIR) + "/tests/tokenizer/byte_fallback/from_spm.json",
                               ck + "/tokenizer.json");
    load(ck, "f.rill", &bf, TokenizerKind::kBpeByteFallback);
    g_bf = &bf;
  }
  load(std::string(RILL_SOURCE_DIR) + "/tests/fuzz/byte_model", "b.rill", &bytes, TokenizerKind::kBytes);
  load(std::string(RILL_SOURCE_DIR) + "/tests/fuzz/rwkv7_world_tiny", "w.rill", &world, TokenizerKind::kWorld);
  char dir[] = "/tmp/rill-fuzz-XXXXXX";
  if (!mkdtemp(dir)) std::abort();
  const std::string ck = std::string(dir) + "/neox";
  convert::write_random_checkpoint("mamba1", {{"d_model", 8}, {"n_layer", 1}, {"vocab", 50280}}, ck);
  std::filesystem::copy_file(std::string(RILL_SOURCE_DIR) + "/data/tokenizers/gpt-neox-20b-tokenizer.json",
                             ck + "/tokenizer.json");
  load(ck, "n.rill", &bpe, TokenizerKind::kBpe);
  g_model = &bytes, g_world = &world, g_bpe = &bpe;
}

// The text's ids (counted first, then written); empty with *s set on a refusal.
std::vector<int32_t> ids_of(const Model& m, const char* text, size_t size, Status* s) {
  size_t n = 0;
  *s = tokenize(m, text, size, nullptr, 0, &n);
  std::vector<int32_t> ids(n);
  if (*s == Status::kOk || (*s == Status::kInvalidArgument && n > 0)) *s = tokenize(m, text, size, ids.data(), ids.size(), &n);
  if (*s != Status::kOk) ids.clear();
  return ids;
}

// The ids' text, token by token; every id must detokenize.
std::string text_of(const Model& m, const std::vector<int32_t>& ids) {
  std::string out;
  for (int32_t t : ids) {
    char buf[4096];
    size_t k = 0;
    if (detokenize(m, t, buf, sizeof buf, &k) != Status::kOk) std::abort();
    out.append(buf, k);
  }
  return out;
}

// World: tokenize; when it succeeds, the detokenized ids give the input back; when a byte has no
// token, n_out counts the tokens before it.
void check_world(const uint8_t* data, size_t size) {
  const Model& m = g_world->model();
  const char* text = reinterpret_cast<const char*>(data);
  size_t n = 0;
  const Status s = tokenize(m, text, size, nullptr, 0, &n);
  std::vector<int32_t> toks(n);
  size_t n2 = 0;
  const Status s2 = tokenize(m, text, size, toks.data(), toks.size(), &n2);
  if (n2 != n) std::abort();
  if (s == Status::kOk && size > 0) std::abort();  // cap 0 cannot hold a non-empty result
  const std::string back = text_of(m, toks);
  if (s2 == Status::kOk) {
    if (back.size() != size || std::memcmp(back.data(), data, size) != 0) std::abort();
  } else if (back.size() >= size || std::memcmp(back.data(), data, back.size()) != 0) {
    std::abort();  // the tokens before the uncovered byte must still be a prefix of the input
  }
}
void check_bpe(const uint8_t* data, size_t size) {
  Status s;
  const std::vector<int32_t> ids = ids_of(g_bpe->model(), reinterpret_cast<const char*>(data), size, &s);
  if (s != Status::kOk) {
    if (s != Status::kInvalidArgument) std::abort();  // only "not UTF-8" is a refusal
    return;
  }
  const std::string back = text_of(g_bpe->model(), ids);
  bool ascii = true;
  for (size_t i = 0; i < size; ++i) ascii = ascii && data[i] < 0x80;
  if (ascii && (back.size() != size || std::memcmp(back.data(), data, size) != 0)) std::abort();
  Status s2;
  if (ids_of(g_bpe->model(), back.data(), back.size(), &s2) != ids || s2 != Status::kOk) std::abort();
}
void check_spm(const uint8_t* data, size_t size) {
  Status s;
  const std::vector<int32_t> ids = ids_of(g_spm->model(), reinterpret_cast<const char*>(data), size, &s);
  if (s == Status::kUnsupported) return;  // built without libsentencepiece
  if (s != Status::kOk) {
    if (s != Status::kInvalidArgument) std::abort();
    return;
  }
  const std::string back = text_of(g_spm->model(), ids);
  bool printable = true;
  for (size_t i = 0; i < size; ++i) printable = printable && ((data[i] >= 0x20 && data[i] < 0x7F) || data[i] == '\n');
  if (printable && (back.size() != size || std::memcmp(back.data(), data, size) != 0)) std::abort();
}
void check_bf(const uint8_t* data, size_t size) {
  Status s;
  const std::vector<int32_t> ids = ids_of(g_bf->model(), reinterpret_cast<const char*>(data), size, &s);
  if (s != Status::kOk) {
    if (s != Status::kInvalidArgument) std::abort();  // only "not UTF-8" is a refusal
    return;
  }
  const std::string back = text_of(g_bf->model(), ids);
  bool plain = size > 0;
  for (size_t i = 0; i < size; ++i) plain = plain && data[i] >= 0x20 && data[i] < 0x7F && data[i] != '<';
  if (plain && (back.size() != size || std::memcmp(back.data(), data, size) != 0)) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!g_model) setup();
  const Model& m = g_model->model();
  const char* text = reinterpret_cast<const char*>(data);
  size_t n = 0;
  std::vector<int32_t> small(size / 2);
  const Status s1 = tokenize(m, text, size, small.data(), small.size(), &n);
  if (size > small.size() && s1 != Status::kInvalidArgument) std::abort();
  std::vector<int32_t> toks(n);
  if (tokenize(m, text, size, toks.data(), toks.size(), &n) != Status::kOk || n != toks.size()) std::abort();
  const std::string back = text_of(m, toks);
  if (back.size() != size || std::memcmp(back.data(), data, size) != 0) std::abort();
  size_t k;
  char c;
  if (detokenize(m, -1, &c, 1, &k) != Status::kTokenRange) std::abort();
  check_world(data, size);
  check_bpe(data, size);
  check_spm(data, size);
  check_bf(data, size);
  return 0;
}
