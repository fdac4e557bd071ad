// The byte-level BPE tokenizer through the public APIs: a model converted with GPT-NeoX's real
// tokenizer.json. Agreement with the independent reference on many texts is the ctest
// tokenizers_vs_reference; here: the API contract (sizes, errors, round trips, C API) and damaged
// tokenizer tables refused at load.
#include <cstring>
#include <filesystem>

#include <doctest/doctest.h>

#include "rill/convert.hpp"
#include "rill/extension.hpp"
#include "rill/rill.h"
#include "rill_generated.h"
#include "test_util.h"

using namespace rill;
using namespace rill_test;

namespace {

// A tiny Mamba (d_model 16, one layer) with GPT-NeoX's vocabulary size and tokenizer.json.
struct NeoxModel {
  TempDir tmp;
  std::string path;
  LoadedModel lm;
  NeoxModel() {
    const std::string ck = tmp.file("ckpt");
    convert::write_random_checkpoint("mamba1", {{"d_model", 16}, {"n_layer", 1}, {"vocab", 50280}}, ck);
    std::filesystem::copy_file(src_dir() + "/data/tokenizers/gpt-neox-20b-tokenizer.json", ck + "/tokenizer.json");
    path = tmp.file("m.rill");
    const std::string err = convert_ckpt(ck, path);
    REQUIRE_MESSAGE(err.empty(), err);
    Error e;
    REQUIRE_MESSAGE(LoadedModel::open(path.c_str(), ModelOptions{}, &lm, &e) == Status::kOk, e.message);
  }
  std::vector<int32_t> ids(const std::string& text) {
    size_t n = 0;
    const Status s = tokenize(lm.model(), text.data(), text.size(), nullptr, 0, &n);
    REQUIRE((s == Status::kOk || s == Status::kInvalidArgument));
    std::vector<int32_t> out(n);
    REQUIRE(tokenize(lm.model(), text.data(), text.size(), out.data(), out.size(), &n) == Status::kOk);
    return out;
  }
  std::string text(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) {
      char buf[256];
      size_t k = 0;
      REQUIRE(detokenize(lm.model(), id, buf, sizeof buf, &k) == Status::kOk);
      s.append(buf, k);
    }
    return s;
  }
};

}  // namespace

TEST_SUITE("tokenizer") {
  TEST_CASE("BPE: GPT-NeoX ids, added tokens, end of text, sizes and errors") {
    NeoxModel m;
    const ModelInfo in = m.lm.model().info();
    CHECK(in.tokenizer == TokenizerKind::kBpe);
    CHECK(in.eos_id == 0);  // <|endoftext|>
    // Ids as GPT-NeoX-20B's published vocabulary gives them.
    CHECK(m.ids("Hello world") == std::vector<int32_t>{12092, 1533});
    CHECK(m.ids("<|endoftext|>") == std::vector<int32_t>{0});
    CHECK(m.ids("<|padding|>") == std::vector<int32_t>{1});
    CHECK(m.ids("  ") == std::vector<int32_t>{50276});  // runs of 2-24 spaces are added tokens
    CHECK(m.ids(std::string(24, ' ')) == std::vector<int32_t>{50254});
    CHECK(m.ids("").empty());
    // cap too small: the count needed, nothing written past cap, and the call can be repeated.
    const std::string t = "Hello world";
    int32_t one[1] = {-7};
    size_t n = 0;
    CHECK(tokenize(m.lm.model(), t.data(), t.size(), one, 1, &n) == Status::kInvalidArgument);
    CHECK(n == 2);
    CHECK(one[0] == 12092);
    // Not UTF-8: refused, as the tokenizers library cannot take such a string either.
    for (const std::string& bad : {std::string("\xff"), std::string("abc\xe2\x82"), std::string("\xc0\xaf"),
                                  std::string("\xed\xa0\x80"), std::string("\xf4\x90\x80\x80")}) {
      int32_t buf[16];
      CHECK(tokenize(m.lm.model(), bad.data(), bad.size(), buf, 16, &n) == Status::kInvalidArgument);
    }
    // NUL is a character like any other.
    const std::string nul("a\0b", 3);
    CHECK(m.text(m.ids(nul)) == nul);
  }

  TEST_CASE("BPE: decoding gives every committed text back") {
    NeoxModel m;
    for (const char* name : {"cjk", "code", "contractions", "crlf", "digits", "emoji", "multilingual", "special",
                             "shakespeare"}) {
      const std::string text = read_file(src_dir() + "/tests/tokenizer/texts/" + name + ".txt");
      REQUIRE(!text.empty());
      const std::vector<int32_t> ids = m.ids(text);
      CHECK_MESSAGE(m.text(ids) == text, name);
      CHECK(ids.size() < text.size());
    }
    // Decomposed input comes back composed (NFC), as the model saw it.
    CHECK(m.text(m.ids("Cafe\xcc\x81")) == "Caf\xc3\xa9");
  }

  TEST_CASE("BPE through the C API equals the C++ API") {
    NeoxModel m;
    rill_model* cm = nullptr;
    rill_error err;
    rill_model_options mo = rill_model_default_options();
    REQUIRE(rill_model_open(m.path.c_str(), &mo, &cm, &err) == RILL_OK);
    rill_model_info info;
    info.struct_size = sizeof info;
    REQUIRE(rill_model_get_info(cm, &info) == RILL_OK);
    CHECK(info.tokenizer == RILL_TOKENIZER_BPE);
    const std::string text = "It's 2024: caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac <|endoftext|>";
    int32_t ids[64];
    size_t n = 0;
    REQUIRE(rill_tokenize(cm, text.data(), text.size(), ids, 64, &n) == RILL_OK);
    CHECK(std::vector<int32_t>(ids, ids + n) == m.ids(text));
    CHECK(rill_tokenize(cm, "\xff", 1, ids, 64, &n) == RILL_INVALID_ARGUMENT);
    rill_model_close(cm);
  }

  TEST_CASE("BPE: damaged tokenizer tables are refused at load with kCorrupt") {
    NeoxModel m;
    const std::string file = read_file(m.path);
    const uint32_t fb_size = *reinterpret_cast<const uint32_t*>(file.data());
    REQUIRE(fb_size < file.size());
    const fb::Model* model = fb::GetModel(file.data() + 4);
    const fb::Tokenizer* tk = model->tokenizer();
    REQUIRE(tk);
    REQUIRE(tk->merges());
    REQUIRE(tk->merges()->size() == 50009);
    const size_t merges_at = reinterpret_cast<const char*>(tk->merges()->Data()) - file.data();
    const size_t bytes_at = reinterpret_cast<const char*>(tk->byte_tokens()->Data()) - file.data();
    auto load = [&](const std::string& damaged, const char* want) {
      TempDir t;
      write_file(t.file("d.rill"), damaged);
      LoadedModel lm;
      Error e;
      const Status s = LoadedModel::open(t.file("d.rill").c_str(), ModelOptions{}, &lm, &e);
      CHECK(s == Status::kCorrupt);
      CHECK_MESSAGE(std::strstr(e.message, want) != nullptr, e.message);
    };
    std::string d = file;  // two merges swapped: the binary search would miss pairs
    std::swap_ranges(d.begin() + merges_at, d.begin() + merges_at + 16, d.begin() + merges_at + 16);
    load(d, "out of order");
    d = file;  // a merge naming a token past the vocabulary
    *reinterpret_cast<uint32_t*>(&d[merges_at + 8]) = 1u << 30;
    load(d, "outside the vocabulary");
    d = file;  // byte 'a' pointing at another token
    *reinterpret_cast<uint32_t*>(&d[bytes_at + 4 * 'a']) = 12092;
    load(d, "the token of byte 97");
  }

  TEST_CASE("world: the full RWKV vocabulary file converts and round-trips bytes that are not UTF-8") {
    TempDir tmp;
    const std::string ck = tmp.file("ckpt");
    convert::write_random_checkpoint("mamba1", {{"d_model", 16}, {"n_layer", 1}, {"vocab", 65536}}, ck);
    const std::string path = tmp.file("w.rill");
    convert::Options o;
    o.input_dir = ck;
    o.output = path;
    o.quiet = true;
    o.tokenizer = src_dir() + "/data/tokenizers/rwkv_vocab_v20230424.txt";
    REQUIRE_NOTHROW(convert::run(o));
    LoadedModel lm;
    Error e;
    REQUIRE(LoadedModel::open(path.c_str(), ModelOptions{}, &lm, &e) == Status::kOk);
    CHECK(lm.model().info().tokenizer == TokenizerKind::kWorld);
    const char raw[] = "\xff\xfe Hello, \xe4\xb8\x96\xe7\x95\x8c\x00\x80 world\r\n";
    const std::string text(raw, sizeof raw - 1);
    size_t n = 0;
    std::vector<int32_t> ids(64);
    REQUIRE(tokenize(lm.model(), text.data(), text.size(), ids.data(), ids.size(), &n) == Status::kOk);
    std::string back;
    for (size_t i = 0; i < n; ++i) {
      char buf[256];
      size_t k = 0;
      REQUIRE(detokenize(lm.model(), ids[i], buf, sizeof buf, &k) == Status::kOk);
      back.append(buf, k);
    }
    CHECK(back == text);
    CHECK(n < text.size());
  }
}
