// SHA-256: the FIPS 180-2 known answers, every split of the input into update() calls, and the weight
// hash the converter writes against coreutils' sha256sum (which shares no code with rill).
#include <doctest/doctest.h>

#include <cstdio>

#include "core/sha256.h"
#include "rill_generated.h"
#include "test_util.h"

using namespace rill;
using namespace rill_test;

namespace {
std::string hex_of(const std::string& msg, size_t piece = 0, bool portable = false) {
  Sha256 h(portable);
  if (piece == 0) {
    h.update(msg.data(), msg.size());
  } else {
    for (size_t i = 0; i < msg.size(); i += piece) h.update(msg.data() + i, std::min(piece, msg.size() - i));
  }
  uint8_t d[32];
  char hex[65];
  h.finish(d, hex);
  return hex;
}
}  // namespace

TEST_SUITE("core") {
  TEST_CASE("sha256: FIPS 180-2 known answers, fed whole and in pieces of every size up to 130") {
    const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK(hex_of("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(hex_of("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(hex_of(two_blocks) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const std::string million(1000000, 'a');
    CHECK(hex_of(million) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    const std::string long_msg = two_blocks + two_blocks + "0123456789";  // crosses block boundaries
    const std::string whole = hex_of(long_msg);
    for (size_t piece = 1; piece <= 130; ++piece) REQUIRE_MESSAGE(hex_of(long_msg, piece) == whole, piece);
  }

  TEST_CASE("sha256: the SHA-instruction path and the portable one agree on every length up to 300 and on 1 MB") {
    MESSAGE(std::string(Sha256::accelerated() ? "this CPU's SHA instructions are used" : "no SHA instructions here: one path only"));
    std::string msg;
    uint32_t x = 1;
    for (size_t i = 0; i < 300; ++i) {
      REQUIRE_MESSAGE(hex_of(msg, 0, true) == hex_of(msg, 0, false), i);
      x = x * 1664525u + 1013904223u;
      msg.push_back(static_cast<char>(x >> 24));
    }
    msg.resize(1 << 20);
    for (size_t i = 300; i < msg.size(); ++i) msg[i] = static_cast<char>(i * 7 + (i >> 11));
    CHECK(hex_of(msg, 0, true) == hex_of(msg, 0, false));
    CHECK(hex_of(msg, 4097, false) == hex_of(msg, 0, true));
    CHECK(hex_of(std::string(1000000, 'a'), 0, true) ==
          "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  }

  TEST_CASE("sha256: the weight hash a converted file carries equals coreutils sha256sum of its data region") {
    TempDir tmp;
    const std::string path = tmp.file("m.rill");
    REQUIRE(convert_ckpt(golden_dir("rwkv7_fla_world"), path, "q4").empty());
    const std::string file = read_file(path);
    const fb::Model* m = fb::GetSizePrefixedModel(file.data());
    REQUIRE(m->data_sha256());
    write_file(tmp.file("data.bin"), file.substr(m->data_offset(), m->data_size()));
    FILE* p = popen(("sha256sum '" + tmp.file("data.bin") + "'").c_str(), "r");
    REQUIRE(p);
    char out[65] = {0};
    REQUIRE(std::fread(out, 1, 64, p) == 64);
    pclose(p);
    CHECK(std::string(out) == m->data_sha256()->str());
  }
}
