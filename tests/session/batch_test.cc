// Many streams in one pass (Batch::step) against each stream stepped alone, and the lifetime rules
// of Model, LoadedModel and Session handles.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <utility>

#include "test_util.h"

using namespace rill;
using namespace rill_test;

namespace {

int32_t token(size_t s, size_t t, size_t V) {
  uint64_t x = (s + 3) * 0x9E3779B97F4A7C15ull + (t + 1) * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return static_cast<int32_t>(x % V);
}

std::vector<unsigned char> blob(const Session& s) {
  std::vector<unsigned char> b(s.state_size());
  REQUIRE(s.state_copy_out(b.data(), b.size()) == Status::kOk);
  return b;
}

// Streams start from different states: stream s has first taken s tokens.
std::vector<OwnedSession> make_streams(const Model& model, size_t n) {
  std::vector<OwnedSession> v(n);
  const size_t V = model.info().vocab_size;
  for (size_t s = 0; s < n; ++s) {
    REQUIRE(OwnedSession::create(model, SessionOptions{}, &v[s]) == Status::kOk);
    for (size_t t = 0; t < s % 7; ++t) REQUIRE(v[s].session().step(token(s, 100 + t, V), nullptr, 0) == Status::kOk);
  }
  return v;
}

// n streams, `steps` tokens each: stepped alone, then in batches; logits and states bit for bit.
void check_batch(const Model& model, size_t n, size_t steps) {
  const size_t V = model.info().vocab_size;
  std::vector<std::vector<float>> want(n, std::vector<float>(steps * V));
  std::vector<std::vector<unsigned char>> want_state(n);
  {
    auto alone = make_streams(model, n);
    for (size_t s = 0; s < n; ++s) {
      for (size_t t = 0; t < steps; ++t)
        REQUIRE(alone[s].session().step(token(s, t, V), want[s].data() + t * V, V) == Status::kOk);
      want_state[s] = blob(alone[s].session());
    }
  }
  auto streams = make_streams(model, n);
  BatchOptions bo;
  bo.max_streams = static_cast<uint32_t>(n);
  OwnedBatch owned;
  Error e;
  REQUIRE_MESSAGE(OwnedBatch::create(model, bo, &owned, &e) == Status::kOk, e.message);
  Batch& batch = owned.get();
  // Sessions in reverse order, so row i is not stream i.
  std::vector<Session*> ss(n);
  for (size_t i = 0; i < n; ++i) ss[i] = &streams[n - 1 - i].session();
  std::vector<int32_t> toks(n);
  std::vector<float> logits(n * V);
  size_t mismatches = 0;
  for (size_t t = 0; t < steps; ++t) {
    for (size_t i = 0; i < n; ++i) toks[i] = token(n - 1 - i, t, V);
    REQUIRE(batch.step(ss.data(), toks.data(), n, logits.data(), logits.size()) == Status::kOk);
    for (size_t i = 0; i < n; ++i)
      mismatches += std::memcmp(logits.data() + i * V, want[n - 1 - i].data() + t * V, V * sizeof(float)) != 0;
  }
  CHECK(mismatches == 0);
  for (size_t s = 0; s < n; ++s) CHECK(blob(streams[s].session()) == want_state[s]);
}

const char* const kCkpts[] = {"mamba1_awkward", "mamba2_groups", "rwkv7_fla_world", "rwkv6_hf_world", "gated_deltanet_gva_tied", "gla_conv_tied",
                                "retnet_conv_tied"};

}  // namespace

TEST_SUITE("batch") {
TEST_CASE("batch step: n streams in one pass equal each stream stepped alone, bit for bit") {
  for (const char* c : kCkpts) {
    for (const char* dtype : {"f32", "f16", "q8", "q4"}) {
      CAPTURE(c);
      CAPTURE(dtype);
      TempDir tmp;
      const std::string path = tmp.file("m.rill");
      const std::string err = convert_ckpt(golden_dir(c), path, dtype);
      REQUIRE_MESSAGE(err.empty(), err);
      LoadedModel lm;
      REQUIRE(LoadedModel::open(path.c_str(), ModelOptions{}, &lm) == Status::kOk);
      for (size_t n : {1, 3, 9, 16}) {
        CAPTURE(n);
        check_batch(lm.model(), n, 5);
      }
    }
  }
}

TEST_CASE("batch step: bad input is refused before any state changes") {
  ConvertedModel cm(golden_dir("mamba2_groups"));
  ConvertedModel other(golden_dir("mamba2_groups"));
  const Model& model = cm.model();
  const size_t V = model.info().vocab_size;
  auto streams = make_streams(model, 3);
  OwnedSession foreign;
  REQUIRE(OwnedSession::create(other.model(), SessionOptions{}, &foreign) == Status::kOk);
  BatchOptions bo;
  bo.max_streams = 3;
  size_t bytes = 0;
  REQUIRE(Batch::footprint(model, bo, &bytes) == Status::kOk);
  AlignedBuffer arena;
  REQUIRE(AlignedBuffer::allocate(bytes, &arena) == Status::kOk);
  Batch batch;
  Error e;
  CHECK(Batch::init(model, bo, arena.data(), bytes - 1, &batch, &e) == Status::kArenaTooSmall);
  CHECK(std::strstr(e.message, "needed") != nullptr);
  BatchOptions zero = bo;
  zero.max_streams = 0;
  CHECK(Batch::init(model, zero, arena.data(), bytes, &batch, &e) == Status::kInvalidArgument);
  CHECK(Batch::init(model, bo, static_cast<unsigned char*>(arena.data()) + 8, bytes, &batch, &e) == Status::kAlignment);
  REQUIRE(Batch::init(model, bo, arena.data(), bytes, &batch, &e) == Status::kOk);

  std::vector<std::vector<unsigned char>> before;
  for (auto& s : streams) before.push_back(blob(s.session()));
  std::vector<float> logits(3 * V);
  Session* a = &streams[0].session();
  Session* b = &streams[1].session();
  Session* c = &streams[2].session();
  {
    Session* ss[] = {a, b, a};
    const int32_t t[] = {1, 2, 3};
    CHECK(batch.step(ss, t, 3, logits.data(), logits.size()) == Status::kInvalidArgument);  // a twice
  }
  {
    Session* ss[] = {a, &foreign.session(), c};
    const int32_t t[] = {1, 2, 3};
    CHECK(batch.step(ss, t, 3, logits.data(), logits.size()) == Status::kInvalidArgument);  // another model
  }
  {
    Session* ss[] = {a, b, c};
    const int32_t t[] = {1, 2, static_cast<int32_t>(V)};
    CHECK(batch.step(ss, t, 3, logits.data(), logits.size()) == Status::kTokenRange);
    const int32_t neg[] = {-1, 2, 3};
    CHECK(batch.step(ss, neg, 3, logits.data(), logits.size()) == Status::kTokenRange);
    const int32_t ok[] = {1, 2, 3};
    CHECK(batch.step(ss, ok, 3, logits.data(), logits.size() - 1) == Status::kInvalidArgument);
    CHECK(batch.step(ss, ok, 0, logits.data(), 0) == Status::kInvalidArgument);
    Session* four[] = {a, b, c, &foreign.session()};
    const int32_t t4[] = {1, 2, 3, 4};
    CHECK(batch.step(four, t4, 4, nullptr, 0) == Status::kInvalidArgument);  // more than max_streams
    Session* with_null[] = {a, nullptr, c};
    CHECK(batch.step(with_null, ok, 3, nullptr, 0) == Status::kInvalidArgument);
  }
  for (size_t i = 0; i < 3; ++i) CHECK(blob(streams[i].session()) == before[i]);
  // An uninitialised batch.
  Batch none;
  Session* ss[] = {a};
  const int32_t t1[] = {1};
  CHECK(none.step(ss, t1, 1, nullptr, 0) == Status::kBadState);
}

TEST_CASE("batch step_vectors: n sensor streams in one pass equal each stepped alone, bit for bit") {
  for (const char* c : {"s4d_prenorm_mean", "mamba1_vector", "mamba2_vector"}) {
    for (const char* dtype : {"f32", "q8"}) {
      CAPTURE(c);
      CAPTURE(dtype);
      ConvertedModel cm(golden_dir(c), dtype);
      const Model& model = cm.model();
      const size_t din = model.info().d_input, dout = model.info().d_output;
      REQUIRE(din > 0);
      auto input = [&](size_t s, size_t t, size_t k) {  // a different signal per stream
        return static_cast<float>(std::sin(0.37 * (t + 1) * (k + 1) + 1.3 * s) * (1 + 0.1 * s));
      };
      for (size_t n : {1, 3, 16}) {
        CAPTURE(n);
        const size_t steps = 6;
        std::vector<OwnedSession> alone(n), streams(n);
        std::vector<float> want(n * steps * dout);
        for (size_t s = 0; s < n; ++s) {
          REQUIRE(OwnedSession::create(model, SessionOptions{}, &alone[s]) == Status::kOk);
          REQUIRE(OwnedSession::create(model, SessionOptions{}, &streams[s]) == Status::kOk);
          std::vector<float> x(din);
          for (size_t t = 0; t < steps; ++t) {
            for (size_t k = 0; k < din; ++k) x[k] = input(s, t, k);
            REQUIRE(alone[s].session().step_vector(x.data(), din, want.data() + (s * steps + t) * dout, dout) ==
                    Status::kOk);
          }
        }
        BatchOptions bo;
        bo.max_streams = static_cast<uint32_t>(n);
        OwnedBatch batch;
        REQUIRE(OwnedBatch::create(model, bo, &batch) == Status::kOk);
        std::vector<Session*> ss(n);
        for (size_t i = 0; i < n; ++i) ss[i] = &streams[n - 1 - i].session();  // row i is stream n-1-i
        std::vector<float> x(n * din), y(n * dout);
        size_t mismatches = 0;
        for (size_t t = 0; t < steps; ++t) {
          for (size_t i = 0; i < n; ++i)
            for (size_t k = 0; k < din; ++k) x[i * din + k] = input(n - 1 - i, t, k);
          REQUIRE(batch.get().step_vectors(ss.data(), x.data(), n, x.size(), y.data(), y.size()) == Status::kOk);
          for (size_t i = 0; i < n; ++i)
            mismatches += std::memcmp(y.data() + i * dout, want.data() + ((n - 1 - i) * steps + t) * dout,
                                      dout * sizeof(float)) != 0;
        }
        CHECK(mismatches == 0);
        for (size_t s = 0; s < n; ++s) CHECK(blob(streams[s].session()) == blob(alone[s].session()));
      }
      // A vector model's batch refuses tokens, and a token step of it is refused before anything runs.
      OwnedBatch batch;
      REQUIRE(OwnedBatch::create(model, BatchOptions{}, &batch) == Status::kOk);
      OwnedSession one;
      REQUIRE(OwnedSession::create(model, SessionOptions{}, &one) == Status::kOk);
      Session* ss[] = {&one.session()};
      const int32_t tok[] = {0};
      CHECK(batch.get().step(ss, tok, 1, nullptr, 0) == Status::kInvalidArgument);
      std::vector<float> x(din, 0.5f), y(dout);
      CHECK(batch.get().step_vectors(ss, x.data(), 1, din + 1, y.data(), y.size()) == Status::kInvalidArgument);
      CHECK(batch.get().step_vectors(ss, x.data(), 1, din, y.data(), y.size() + 1) == Status::kInvalidArgument);
    }
  }
  // A token model's batch refuses vectors.
  ConvertedModel tm(golden_dir("mamba1_awkward"));
  OwnedBatch batch;
  REQUIRE(OwnedBatch::create(tm.model(), BatchOptions{}, &batch) == Status::kOk);
  OwnedSession one;
  REQUIRE(OwnedSession::create(tm.model(), SessionOptions{}, &one) == Status::kOk);
  Session* ss[] = {&one.session()};
  const float x[4] = {0, 0, 0, 0};
  CHECK(batch.get().step_vectors(ss, x, 1, 4, nullptr, 0) == Status::kInvalidArgument);
}

TEST_CASE("batch step: which stream was refused, and the skip mode where the others advance") {
  ConvertedModel cm(golden_dir("mamba2_groups"));
  const Model& model = cm.model();
  const size_t V = model.info().vocab_size;
  auto streams = make_streams(model, 3);
  auto alone = make_streams(model, 3);  // the same three, stepped alone where a step should advance them
  OwnedBatch batch;
  BatchOptions bo;
  bo.max_streams = 4;
  REQUIRE(OwnedBatch::create(model, bo, &batch) == Status::kOk);
  Session* a = &streams[0].session();
  Session* b = &streams[1].session();
  Session* c = &streams[2].session();
  std::vector<float> logits(3 * V), want(V);
  Status st[4];
  const int32_t bad_b[] = {5, static_cast<int32_t>(V), 7};
  Session* abc[] = {a, b, c};
  const auto before_b = blob(*b);

  // Refuse-all: the first refusal, each stream's verdict, nothing changed.
  const auto before_a = blob(*a);
  CHECK(batch.get().step(abc, bad_b, 3, logits.data(), logits.size(), st) == Status::kTokenRange);
  CHECK(st[0] == Status::kOk);
  CHECK(st[1] == Status::kTokenRange);
  CHECK(st[2] == Status::kOk);
  CHECK(blob(*a) == before_a);
  CHECK(blob(*b) == before_b);

  // Skip: a and c advance exactly as alone, b keeps its state and gets a NaN row.
  CHECK(batch.get().step(abc, bad_b, 3, logits.data(), logits.size(), nullptr, BadStream::kSkip) ==
        Status::kInvalidArgument);  // a skip needs the verdicts
  REQUIRE(batch.get().step(abc, bad_b, 3, logits.data(), logits.size(), st, BadStream::kSkip) == Status::kOk);
  CHECK(st[1] == Status::kTokenRange);
  REQUIRE(alone[0].session().step(5, want.data(), V) == Status::kOk);
  CHECK(std::memcmp(logits.data(), want.data(), V * sizeof(float)) == 0);
  REQUIRE(alone[2].session().step(7, want.data(), V) == Status::kOk);
  CHECK(std::memcmp(logits.data() + 2 * V, want.data(), V * sizeof(float)) == 0);
  size_t nan_rows = 0;
  for (size_t j = 0; j < V; ++j) nan_rows += std::isnan(logits[V + j]);
  CHECK(nan_rows == V);
  CHECK(blob(*a) == blob(alone[0].session()));
  CHECK(blob(*b) == before_b);
  CHECK(blob(*c) == blob(alone[2].session()));

  // Skip with a session met twice and a null one: the first occurrence advances, the rest are skipped.
  Session* dup[] = {c, nullptr, a, c};
  const int32_t t4[] = {9, 1, 2, 3};
  std::vector<float> l4(4 * V);
  REQUIRE(batch.get().step(dup, t4, 4, l4.data(), l4.size(), st, BadStream::kSkip) == Status::kOk);
  CHECK(st[0] == Status::kOk);
  CHECK(st[1] == Status::kInvalidArgument);
  CHECK(st[2] == Status::kOk);
  CHECK(st[3] == Status::kInvalidArgument);
  REQUIRE(alone[2].session().step(9, want.data(), V) == Status::kOk);
  CHECK(std::memcmp(l4.data(), want.data(), V * sizeof(float)) == 0);
  REQUIRE(alone[0].session().step(2, want.data(), V) == Status::kOk);
  CHECK(std::memcmp(l4.data() + 2 * V, want.data(), V * sizeof(float)) == 0);
  CHECK(std::isnan(l4[V]));
  CHECK(std::isnan(l4[3 * V + 5]));
  CHECK(blob(*a) == blob(alone[0].session()));
  CHECK(blob(*c) == blob(alone[2].session()));

  // Every stream bad: nothing runs, all rows NaN, still kOk with the verdicts.
  const int32_t all_bad[] = {-1, -2, static_cast<int32_t>(V)};
  REQUIRE(batch.get().step(abc, all_bad, 3, logits.data(), logits.size(), st, BadStream::kSkip) == Status::kOk);
  CHECK((st[0] == Status::kTokenRange && st[1] == Status::kTokenRange && st[2] == Status::kTokenRange));
  CHECK((std::isnan(logits[0]) && std::isnan(logits[3 * V - 1])));
  CHECK(blob(*b) == before_b);

  // A bad call (not a bad stream): the verdicts are not written.
  st[0] = st[1] = st[2] = Status::kDeviceError;
  CHECK(batch.get().step(abc, bad_b, 3, logits.data(), logits.size() - 1, st, BadStream::kSkip) ==
        Status::kInvalidArgument);
  CHECK(st[0] == Status::kDeviceError);
  CHECK(batch.get().step(abc, bad_b, 3, logits.data(), logits.size(), st, static_cast<BadStream>(7)) ==
        Status::kInvalidArgument);

  // Sensor streams: a NaN row is skipped, the others advance.
  ConvertedModel vm(golden_dir("s4d_prenorm_mean"));
  const size_t din = vm.model().info().d_input, dout = vm.model().info().d_output;
  OwnedSession v0, v1, r0;
  REQUIRE(OwnedSession::create(vm.model(), SessionOptions{}, &v0) == Status::kOk);
  REQUIRE(OwnedSession::create(vm.model(), SessionOptions{}, &v1) == Status::kOk);
  REQUIRE(OwnedSession::create(vm.model(), SessionOptions{}, &r0) == Status::kOk);
  OwnedBatch vb;
  REQUIRE(OwnedBatch::create(vm.model(), BatchOptions{}, &vb) == Status::kOk);
  std::vector<float> x(2 * din, 0.25f), y(2 * dout), ref(dout);
  x[din + 1] = std::nanf("");
  Session* vs[] = {&v0.session(), &v1.session()};
  const auto v1_before = blob(v1.session());
  CHECK(vb.get().step_vectors(vs, x.data(), 2, x.size(), y.data(), y.size(), st) == Status::kNonFinite);
  CHECK((st[0] == Status::kOk && st[1] == Status::kNonFinite));
  REQUIRE(vb.get().step_vectors(vs, x.data(), 2, x.size(), y.data(), y.size(), st, BadStream::kSkip) == Status::kOk);
  REQUIRE(r0.session().step_vector(x.data(), din, ref.data(), dout) == Status::kOk);
  CHECK(std::memcmp(y.data(), ref.data(), dout * sizeof(float)) == 0);
  CHECK(std::isnan(y[dout]));
  CHECK(blob(v0.session()) == blob(r0.session()));
  CHECK(blob(v1.session()) == v1_before);
}

TEST_CASE("lifetime: sessions survive moving the Model and LoadedModel; sessions move, never copy") {
  static_assert(!std::is_copy_constructible<Session>::value, "a Session is not copyable");
  static_assert(!std::is_copy_assignable<Session>::value, "a Session is not copyable");
  static_assert(std::is_nothrow_move_constructible<Session>::value, "a Session moves");
  static_assert(!std::is_copy_constructible<Batch>::value, "a Batch is not copyable");

  TempDir tmp;
  const std::string path = tmp.file("m.rill");
  REQUIRE(convert_ckpt(golden_dir("mamba1_awkward"), path).empty());
  auto* lm = new LoadedModel;
  REQUIRE(LoadedModel::open(path.c_str(), ModelOptions{}, lm) == Status::kOk);
  const size_t V = lm->model().info().vocab_size;
  std::vector<float> want(V), got(V);
  {
    OwnedSession ref;
    REQUIRE(OwnedSession::create(lm->model(), SessionOptions{}, &ref) == Status::kOk);
    for (int32_t t : {1, 2, 3}) REQUIRE(ref.session().step(t, want.data(), V) == Status::kOk);
  }
  OwnedSession os;
  REQUIRE(OwnedSession::create(lm->model(), SessionOptions{}, &os) == Status::kOk);
  REQUIRE(os.session().step(1, nullptr, 0) == Status::kOk);
  // Move the LoadedModel away and destroy the old object (ASan reports any use of it).
  auto* moved = new LoadedModel(std::move(*lm));
  delete lm;
  REQUIRE(os.session().step(2, nullptr, 0) == Status::kOk);

  // Moving a session leaves the source empty; clone makes an independent copy.
  Session s2 = std::move(os.session());
  CHECK_FALSE(os.session().ok());
  CHECK(os.session().step(3, got.data(), V) == Status::kBadState);
  AlignedBuffer arena;
  REQUIRE(AlignedBuffer::allocate(s2.arena_bytes(), &arena) == Status::kOk);
  Session copy;
  REQUIRE(s2.clone(arena.data(), arena.size(), &copy) == Status::kOk);
  REQUIRE(s2.step(3, got.data(), V) == Status::kOk);
  CHECK(std::memcmp(got.data(), want.data(), V * sizeof(float)) == 0);
  std::fill(got.begin(), got.end(), 0.0f);
  REQUIRE(copy.step(3, got.data(), V) == Status::kOk);
  CHECK(std::memcmp(got.data(), want.data(), V * sizeof(float)) == 0);
  CHECK(s2.clone(arena.data(), arena.size() - 64, &copy) == Status::kArenaTooSmall);
  CHECK(s2.model().impl() == moved->model().impl());
  delete moved;
}

}  // TEST_SUITE("batch")
