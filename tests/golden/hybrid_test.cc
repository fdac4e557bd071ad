// Mamba-2 / attention hybrids (Granite 4.0-H, Nemotron-H) against tests/golden/make_golden_mamba2_hybrid.py:
// a float64 reference over the whole sequence (Mamba-2 by the chunked SSD form, attention as one masked
// product over all positions, every multiplier), and what a context-limited state must do: refuse at
// max_context and change nothing, or slide (checked against the reference with a 16-token window).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "test_util.h"

using namespace rill;
using namespace rill_test;

namespace {

const char* kCases[] = {"granite_hybrid_nope", "granite_hybrid_rope_bf16", "nemotron_h_bf16"};

struct Hybrid {
  TempDir tmp;
  std::string dir, path;
  std::vector<int32_t> tokens;
  Npy logits;

  explicit Hybrid(const std::string& name, const std::string& dtype = "f32", const std::string& kv = "auto") {
    dir = golden_dir(name);
    path = tmp.file("m.rill");
    const std::string err = convert_ckpt(dir, path, dtype, true, "rows16", kv);
    REQUIRE_MESSAGE(err.empty(), err);
    tokens = read_tokens(dir + "/tokens.txt");
    logits = read_npy(dir + "/logits.npy");
    REQUIRE(logits.shape.size() == 2);
    REQUIRE(logits.shape[0] == tokens.size());
  }
  LoadedModel open(uint32_t max_context = 0) const {
    ModelOptions mo;
    mo.max_context = max_context;
    LoadedModel lm;
    Error e;
    REQUIRE_MESSAGE(LoadedModel::open(path.c_str(), mo, &lm, &e) == Status::kOk, e.message);
    REQUIRE(lm.model().info().arch == Arch::kMamba2Hybrid);
    REQUIRE(lm.model().info().vocab_size == logits.shape[1]);
    return lm;
  }
  size_t V() const { return logits.shape[1]; }
};

OwnedSession session_of(const Model& m, uint32_t chunk = 32, ContextFull cf = ContextFull::kRefuse) {
  OwnedSession os;
  SessionOptions so;
  so.prefill_chunk = chunk;
  so.context_full = cf;
  Error e;
  REQUIRE_MESSAGE(OwnedSession::create(m, so, &os, &e) == Status::kOk, e.message);
  return os;
}

std::vector<unsigned char> blob(const Session& s) {
  std::vector<unsigned char> b(s.state_size());
  REQUIRE(s.state_copy_out(b.data(), b.size()) == Status::kOk);
  return b;
}

}  // namespace

TEST_SUITE("golden") {
  TEST_CASE("Mamba-2 hybrids: every step's logits match the whole-sequence float64 reference (f32, and f16 rings)") {
    for (const char* cname : kCases) {
      for (const std::string kv : {"f32", "f16"}) {
        const std::string name = cname;
        CAPTURE(name);
        CAPTURE(kv);
        Hybrid h(name, "f32", kv);
        LoadedModel lm = h.open();
        OwnedSession os = session_of(lm.model());
        const float scale = h.logits.max_abs();
        const float tol = (kv == "f32" ? 1e-4f : 2e-3f) * scale;
        std::vector<float> out(h.V());
        float worst = 0;
        for (size_t t = 0; t < h.tokens.size(); ++t) {
          REQUIRE(os.session().step(h.tokens[t], out.data(), out.size()) == Status::kOk);
          const float d = h.logits.row_diff(t, out.data());
          worst = std::max(worst, d);
          CHECK_MESSAGE(d <= tol, "step " << t << ": max diff " << d << " > " << tol);
        }
        MESSAGE(name << " (" << kv << " rings): max logit diff " << worst << " over " << h.tokens.size()
                     << " steps (max |logit| " << scale << ")");
      }
    }
  }

  TEST_CASE("Mamba-2 hybrids: prefill in chunks of 1, 5, 16 and 64 is bit-identical to stepping") {
    for (const char* name : kCases) {
      CAPTURE(name);
      Hybrid h(name);
      LoadedModel lm = h.open();
      const size_t T = h.tokens.size();
      std::vector<float> ref(h.V()), out(h.V());
      OwnedSession stepped = session_of(lm.model());
      for (size_t t = 0; t < T; ++t) REQUIRE(stepped.session().step(h.tokens[t], ref.data(), ref.size()) == Status::kOk);
      const std::vector<unsigned char> want = blob(stepped.session());
      for (uint32_t chunk : {1u, 5u, 16u, 64u}) {
        CAPTURE(chunk);
        OwnedSession os = session_of(lm.model(), chunk);
        REQUIRE(os.session().prefill(h.tokens.data(), T, out.data(), out.size()) == Status::kOk);
        CHECK(std::memcmp(out.data(), ref.data(), out.size() * sizeof(float)) == 0);
        CHECK(blob(os.session()) == want);
      }
    }
  }

  TEST_CASE("Mamba-2 hybrids: a state saved in the middle and restored continues exactly; clones too") {
    Hybrid h("granite_hybrid_rope_bf16");
    LoadedModel lm = h.open();
    const size_t T = h.tokens.size(), mid = 31;
    OwnedSession a = session_of(lm.model());
    std::vector<float> out(h.V());
    REQUIRE(a.session().prefill(h.tokens.data(), mid, nullptr, 0) == Status::kOk);
    const std::vector<unsigned char> saved = blob(a.session());
    OwnedSession b = session_of(lm.model());
    const size_t bytes = (a.arena_bytes() + 63) / 64 * 64;
    std::unique_ptr<void, void (*)(void*)> arena(std::aligned_alloc(64, bytes), std::free);
    Session c;
    Error e;
    REQUIRE(a.session().clone(arena.get(), bytes, &c, &e) == Status::kOk);
    REQUIRE(b.session().state_copy_in(saved.data(), saved.size()) == Status::kOk);
    std::vector<float> got_a(h.V()), got_b(h.V()), got_c(h.V());
    for (size_t t = mid; t < T; ++t) {
      REQUIRE(a.session().step(h.tokens[t], got_a.data(), got_a.size()) == Status::kOk);
      REQUIRE(b.session().step(h.tokens[t], got_b.data(), got_b.size()) == Status::kOk);
      REQUIRE(c.step(h.tokens[t], got_c.data(), got_c.size()) == Status::kOk);
      REQUIRE(std::memcmp(got_a.data(), got_b.data(), got_a.size() * sizeof(float)) == 0);
      REQUIRE(std::memcmp(got_a.data(), got_c.data(), got_a.size() * sizeof(float)) == 0);
      CHECK(h.logits.row_diff(t, got_a.data()) <= 1e-4f * h.logits.max_abs());
    }
    CHECK(blob(a.session()) == blob(b.session()));
    c = Session{};  // before its arena goes
  }

  TEST_CASE("Mamba-2 hybrids: Batch::step over streams at different positions equals stepping each alone") {
    Hybrid h("nemotron_h_bf16");
    LoadedModel lm = h.open();
    const size_t starts[] = {0, 7, 20, 33};
    constexpr size_t S = 4, kSteps = 12;
    OwnedSession batched[S], alone[S];
    Session* ptrs[S];
    for (size_t i = 0; i < S; ++i) {
      batched[i] = session_of(lm.model());
      alone[i] = session_of(lm.model());
      if (starts[i]) {
        REQUIRE(batched[i].session().prefill(h.tokens.data(), starts[i], nullptr, 0) == Status::kOk);
        REQUIRE(alone[i].session().prefill(h.tokens.data(), starts[i], nullptr, 0) == Status::kOk);
      }
      ptrs[i] = &batched[i].session();
    }
    OwnedBatch ob;
    BatchOptions bo;
    bo.max_streams = S;
    REQUIRE(OwnedBatch::create(lm.model(), bo, &ob) == Status::kOk);
    std::vector<float> out(S * h.V()), one(h.V());
    for (size_t k = 0; k < kSteps; ++k) {
      int32_t toks[S];
      for (size_t i = 0; i < S; ++i) toks[i] = h.tokens[starts[i] + k];
      REQUIRE(ob.get().step(ptrs, toks, S, out.data(), out.size()) == Status::kOk);
      for (size_t i = 0; i < S; ++i) {
        REQUIRE(alone[i].session().step(toks[i], one.data(), one.size()) == Status::kOk);
        REQUIRE(std::memcmp(one.data(), out.data() + i * h.V(), one.size() * sizeof(float)) == 0);
      }
    }
    for (size_t i = 0; i < S; ++i) CHECK(blob(batched[i].session()) == blob(alone[i].session()));
  }

  TEST_CASE("max_context chosen at load: the state is sized by it, reported, and part of the fingerprint") {
    Hybrid h("granite_hybrid_nope");  // the converter's default: max_position_embeddings 128
    LoadedModel def = h.open(), small = h.open(16), big = h.open(1000);
    CHECK(def.model().info().max_context == 128);
    CHECK(small.model().info().max_context == 16);
    CHECK(big.model().info().max_context == 1000);
    // Two attention layers, each a key and a value ring of max_context x (2 heads x 16) f32.
    const uint64_t per_token = 2 * 2 * 2 * 16 * 4;
    CHECK(def.model().info().state_bytes - small.model().info().state_bytes == (128 - 16) * per_token);
    CHECK(big.model().info().state_bytes - def.model().info().state_bytes == (1000 - 128) * per_token);
    OwnedSession a = session_of(small.model()), b = session_of(def.model());
    const std::vector<unsigned char> s = blob(a.session());
    CHECK(b.session().state_copy_in(s.data(), s.size()) == Status::kStateMismatch);
    // Before the ring is full, the logits are the same whatever the ring's size.
    std::vector<float> x(h.V()), y(h.V());
    for (size_t t = 0; t < 16; ++t) {
      REQUIRE(a.session().step(h.tokens[t], x.data(), x.size()) == Status::kOk);
      REQUIRE(b.session().step(h.tokens[t], y.data(), y.size()) == Status::kOk);
      CHECK(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
    }
    LoadedModel lm;
    Error e;
    ModelOptions mo;
    mo.max_context = (1u << 20) + 1;
    CHECK(LoadedModel::open(h.path.c_str(), mo, &lm, &e) == Status::kInvalidArgument);
    CHECK(std::string(e.message).find("max_context") != std::string::npos);
  }

  TEST_CASE("a full stream is refused (kContextFull) and nothing changes; reset and restore count again") {
    Hybrid h("granite_hybrid_nope");
    LoadedModel lm = h.open(16);
    OwnedSession os = session_of(lm.model());
    Session& s = os.session();
    std::vector<float> out(h.V());
    REQUIRE(s.prefill(h.tokens.data(), 14, nullptr, 0) == Status::kOk);
    std::vector<unsigned char> before = blob(s);
    CHECK(s.prefill(h.tokens.data() + 14, 3, out.data(), out.size()) == Status::kContextFull);  // 14 + 3 > 16
    CHECK(blob(s) == before);
    REQUIRE(s.prefill(h.tokens.data() + 14, 2, out.data(), out.size()) == Status::kOk);  // exactly full
    CHECK(h.logits.row_diff(15, out.data()) <= 1e-4f * h.logits.max_abs());
    before = blob(s);
    std::fill(out.begin(), out.end(), 7.f);
    CHECK(s.step(h.tokens[16], out.data(), out.size()) == Status::kContextFull);
    CHECK(blob(s) == before);
    CHECK(std::all_of(out.begin(), out.end(), [](float v) { return v == 7.f; }));  // logits not written
    // A batch: the full stream refuses the whole step, or is skipped while the other advances.
    OwnedSession fresh = session_of(lm.model());
    Session* streams[2] = {&s, &fresh.session()};
    const int32_t toks[2] = {h.tokens[16], h.tokens[0]};
    OwnedBatch ob;
    REQUIRE(OwnedBatch::create(lm.model(), BatchOptions{}, &ob) == Status::kOk);
    std::vector<float> two(2 * h.V());
    Status verdict[2];
    const std::vector<unsigned char> fresh_before = blob(fresh.session());
    CHECK(ob.get().step(streams, toks, 2, two.data(), two.size(), verdict) == Status::kContextFull);
    CHECK(verdict[0] == Status::kContextFull);
    CHECK(verdict[1] == Status::kOk);
    CHECK(blob(fresh.session()) == fresh_before);
    CHECK(ob.get().step(streams, toks, 2, two.data(), two.size(), verdict, BadStream::kSkip) == Status::kOk);
    CHECK(std::isnan(two[0]));
    CHECK(h.logits.row_diff(0, two.data() + h.V()) <= 1e-4f * h.logits.max_abs());
    CHECK(blob(s) == before);
    // A restored blob carries its position: a blob of 16 tokens is full, one of 3 is not.
    OwnedSession other = session_of(lm.model());
    REQUIRE(other.session().state_copy_in(before.data(), before.size()) == Status::kOk);
    CHECK(other.session().step(h.tokens[16], out.data(), out.size()) == Status::kContextFull);
    REQUIRE(s.reset() == Status::kOk);
    REQUIRE(s.prefill(h.tokens.data(), 3, nullptr, 0) == Status::kOk);
    const std::vector<unsigned char> three = blob(s);
    REQUIRE(other.session().state_copy_in(three.data(), three.size()) == Status::kOk);
    CHECK(other.session().prefill(h.tokens.data() + 3, 13, out.data(), out.size()) == Status::kOk);
    CHECK(h.logits.row_diff(15, out.data()) <= 1e-4f * h.logits.max_abs());
  }

  TEST_CASE("a sliding session keeps the last max_context tokens: the reference with a 16-token window") {
    for (const std::string name : {"granite_hybrid_rope_bf16", "nemotron_h_bf16"}) {
      CAPTURE(name);
      Hybrid h(name);
      const Npy slide = read_npy(h.dir + "/logits_slide16.npy");
      LoadedModel lm = h.open(16);
      for (uint32_t chunk : {1u, 32u}) {
        CAPTURE(chunk);
        OwnedSession os = session_of(lm.model(), chunk, ContextFull::kSlide);
        std::vector<float> out(h.V());
        float worst = 0, differs = 0;
        for (size_t t = 0; t < h.tokens.size(); ++t) {
          REQUIRE(os.session().step(h.tokens[t], out.data(), out.size()) == Status::kOk);
          worst = std::max(worst, slide.row_diff(t, out.data()));
          if (t >= 16) differs = std::max(differs, h.logits.row_diff(t, out.data()));
        }
        CHECK(worst <= 1e-4f * slide.max_abs());
        CHECK(differs > 1e-2f * h.logits.max_abs());  // the window changed the outputs: the test can fail
        // Prefill slides the same way, in one call past max_context.
        OwnedSession p = session_of(lm.model(), chunk, ContextFull::kSlide);
        REQUIRE(p.session().prefill(h.tokens.data(), h.tokens.size(), out.data(), out.size()) == Status::kOk);
        CHECK(slide.row_diff(h.tokens.size() - 1, out.data()) <= 1e-4f * slide.max_abs());
        MESSAGE(name << " slide, chunk " << chunk << ": max diff " << worst << " from the windowed reference");
      }
    }
  }
}
