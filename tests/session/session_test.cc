// Caller misuse and bad input: each gets a status; the state is unchanged by a failed call, and the
// session goes on exactly as one that never saw the error.
#include <doctest/doctest.h>

#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>

#include "test_util.h"

using namespace rill;
using namespace rill_test;

TEST_SUITE("session") {
  TEST_CASE("bad calls return status codes and leave the state unchanged") {
    TempDir tmp;
    const std::string path = tmp.file("m.rill");
    REQUIRE(convert_ckpt(golden_dir("mamba1_awkward"), path).empty());
    LoadedModel lm;
    REQUIRE(LoadedModel::open(path.c_str(), ModelOptions{}, &lm) == Status::kOk);
    OwnedSession a, b;
    REQUIRE(OwnedSession::create(lm.model(), SessionOptions{}, &a) == Status::kOk);
    REQUIRE(OwnedSession::create(lm.model(), SessionOptions{}, &b) == Status::kOk);
    const size_t V = lm.model().info().vocab_size;
    std::vector<float> la(V), lb(V);
    for (int32_t t : {1, 5, 9}) {
      REQUIRE(a.session().step(t, la.data(), V) == Status::kOk);
      REQUIRE(b.session().step(t, lb.data(), V) == Status::kOk);
    }
    std::vector<unsigned char> before(a.session().state_size()), after(before.size());
    REQUIRE(a.session().state_copy_out(before.data(), before.size()) == Status::kOk);

    CHECK(a.session().step(-1, la.data(), V) == Status::kTokenRange);
    CHECK(a.session().step(static_cast<int32_t>(V), la.data(), V) == Status::kTokenRange);
    CHECK(a.session().step(3, la.data(), V - 1) == Status::kInvalidArgument);
    const int32_t bad_run[] = {1, 2, 99999, 3};
    CHECK(a.session().prefill(bad_run, 4, la.data(), V) == Status::kTokenRange);
    CHECK(a.session().prefill(nullptr, 2, la.data(), V) == Status::kInvalidArgument);
    CHECK(a.session().state_copy_in(before.data(), before.size() - 1) == Status::kStateMismatch);
    CHECK(a.session().state_copy_out(after.data(), after.size() + 1) == Status::kInvalidArgument);
    REQUIRE(a.session().state_copy_out(after.data(), after.size()) == Status::kOk);
    CHECK(before == after);

    for (int32_t t : {7, 2, 36, 0}) {
      REQUIRE(a.session().step(t, la.data(), V) == Status::kOk);
      REQUIRE(b.session().step(t, lb.data(), V) == Status::kOk);
      REQUIRE(std::memcmp(la.data(), lb.data(), V * 4) == 0);
    }
  }

  TEST_CASE("state blobs: damaged, truncated or foreign blobs are refused and change nothing") {
    TempDir tmp;
    const std::string p1 = tmp.file("a.rill"), p2 = tmp.file("b.rill");
    REQUIRE(convert_ckpt(golden_dir("mamba1_awkward"), p1).empty());
    REQUIRE(convert_ckpt(golden_dir("mamba1_hf_f16_tied"), p2).empty());
    LoadedModel m1, m2;
    REQUIRE(LoadedModel::open(p1.c_str(), ModelOptions{}, &m1) == Status::kOk);
    REQUIRE(LoadedModel::open(p2.c_str(), ModelOptions{}, &m2) == Status::kOk);
    OwnedSession a, b;
    REQUIRE(OwnedSession::create(m1.model(), SessionOptions{}, &a) == Status::kOk);
    REQUIRE(OwnedSession::create(m2.model(), SessionOptions{}, &b) == Status::kOk);
    Session& s = a.session();
    for (int32_t t : {3, 4, 5}) REQUIRE(s.step(t, nullptr, 0) == Status::kOk);
    std::vector<unsigned char> blob(s.state_size()), cur(s.state_size()), other(b.session().state_size());
    REQUIRE(s.state_copy_out(blob.data(), blob.size()) == Status::kOk);
    CHECK(blob.size() == Session::kStateHeaderBytes + m1.model().info().state_bytes);
    CHECK(std::memcmp(blob.data(), "RLST", 4) == 0);
    REQUIRE(s.step(6, nullptr, 0) == Status::kOk);
    REQUIRE(s.state_copy_out(cur.data(), cur.size()) == Status::kOk);
    auto unchanged = [&] {
      std::vector<unsigned char> now(s.state_size());
      REQUIRE(s.state_copy_out(now.data(), now.size()) == Status::kOk);
      return now == cur;
    };
    for (size_t pos : {size_t(0), size_t(9), size_t(20), size_t(70), blob.size() - 1}) {
      std::vector<unsigned char> bad = blob;
      bad[pos] ^= 0x10;
      CHECK_MESSAGE(s.state_copy_in(bad.data(), bad.size()) == Status::kStateMismatch, "flip at " << pos);
      CHECK(unchanged());
    }
    CHECK(s.state_copy_in(blob.data(), blob.size() / 2) == Status::kStateMismatch);
    REQUIRE(b.session().state_copy_out(other.data(), other.size()) == Status::kOk);
    CHECK(s.state_copy_in(other.data(), other.size()) == Status::kStateMismatch);
    CHECK(b.session().state_copy_in(blob.data(), blob.size()) == Status::kStateMismatch);
    CHECK(unchanged());
    CHECK(s.state_copy_in(blob.data(), blob.size()) == Status::kOk);
  }

  TEST_CASE("weight checksum: verify_data passes on a good file and names a damaged one") {
    TempDir tmp;
    const std::string p = tmp.file("a.rill");
    REQUIRE(convert_ckpt(golden_dir("mamba1_awkward"), p).empty());
    LoadedModel m;
    REQUIRE(LoadedModel::open(p.c_str(), ModelOptions{}, &m) == Status::kOk);
    Error e;
    CHECK(m.model().verify_data(&e) == Status::kOk);
    std::string bytes = read_file(p);
    bytes[bytes.size() - 100] ^= 1;  // inside the last tensor
    write_file(p, bytes);
    LoadedModel bad;
    REQUIRE(LoadedModel::open(p.c_str(), ModelOptions{}, &bad) == Status::kOk);  // structure is intact
    CHECK(bad.model().verify_data(&e) == Status::kCorrupt);
    CHECK(std::string(e.message).find("checksum mismatch") != std::string::npos);
  }

  TEST_CASE("a thread pool gives bit-identical outputs to one thread (f32, q8, q4)") {
    const std::string demo = src_dir() + "/examples/demo_model/checkpoint";
    ThreadPool* pool = nullptr;
    REQUIRE(ThreadPool::create(2, &pool) == Status::kOk);
    REQUIRE(pool->threads() == 2);
    for (const char* dtype : {"f32", "q8", "q4"}) {
      CAPTURE(dtype);
      TempDir tmp;
      const std::string p = tmp.file("m.rill");
      REQUIRE(convert_ckpt(demo, p, dtype).empty());
      LoadedModel m;
      REQUIRE(LoadedModel::open(p.c_str(), ModelOptions{}, &m) == Status::kOk);
      SessionOptions two;
      two.pool = pool;
      OwnedSession a, b;
      REQUIRE(OwnedSession::create(m.model(), SessionOptions{}, &a) == Status::kOk);
      REQUIRE(OwnedSession::create(m.model(), two, &b) == Status::kOk);
      std::vector<float> la(256), lb(256);
      for (int32_t t : {82, 79, 77, 69, 79, 58, 10, 66}) {
        REQUIRE(a.session().step(t, la.data(), 256) == Status::kOk);
        REQUIRE(b.session().step(t, lb.data(), 256) == Status::kOk);
        REQUIRE(std::memcmp(la.data(), lb.data(), sizeof(float) * 256) == 0);
      }
    }
    ThreadPool::destroy(pool);
  }

  TEST_CASE("an uninitialised session or model is refused") {
    Session s;
    float x[4];
    CHECK(s.step(0, x, 4) == Status::kBadState);
    CHECK(s.prefill(nullptr, 0, nullptr, 0) == Status::kBadState);
    CHECK(s.state_copy_out(x, 4) == Status::kBadState);
    Model m;
    size_t n;
    CHECK(Session::footprint(m, SessionOptions{}, &n) == Status::kInvalidArgument);
    Error e;
    alignas(64) unsigned char arena[256];
    CHECK(Session::init(m, SessionOptions{}, arena, sizeof arena, &s, &e) == Status::kBadState);
    CHECK(Model::init(nullptr, 0, ModelOptions{}, arena, sizeof arena, &m, &e) != Status::kOk);
    ModelOptions cuda;
    cuda.backend = Backend::kCuda;
    CHECK(Model::init(arena, sizeof arena, cuda, arena, sizeof arena, &m, &e) == Status::kNoBackend);
  }

  TEST_CASE("status strings: every code declared in rill.hpp has its own; other values are unknown") {
    // The codes come from the header itself, so a code added there without a message fails here.
    const std::string h = read_file(src_dir() + "/runtime/include/rill/rill.hpp");
    const size_t begin = h.find("enum class Status"), end = h.find("};", begin);
    REQUIRE(begin != std::string::npos);
    std::istringstream body(h.substr(begin, end - begin));
    std::vector<int> codes;
    std::set<std::string> texts;
    for (std::string line; std::getline(body, line);) {
      const size_t k = line.find(" k"), eq = line.find(" = ");
      if (k == std::string::npos || eq == std::string::npos || eq < k) continue;
      const int c = std::stoi(line.substr(eq + 3));
      const std::string text = status_str(static_cast<Status>(c));
      CHECK_MESSAGE(text != "unknown status", line);
      CHECK_MESSAGE(texts.insert(text).second, "duplicate message: " << line);
      codes.push_back(c);
    }
    CHECK(codes.size() >= 16);
    for (int c = 0; c < 256; ++c)
      if (std::find(codes.begin(), codes.end(), c) == codes.end())
        CHECK_MESSAGE(std::string(status_str(static_cast<Status>(c))) == "unknown status", c);
  }
}

// An allocation the system refuses: its own suite, which ctest runs with ASan's
// allocator_may_return_null (every other test runs with ASan aborting on a failed allocation).
// Page faults after init: sanitizers fault on their shadow memory, so this runs in builds without them.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RILL_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define RILL_TEST_SANITIZED 1
#endif
#endif
#if !defined(RILL_TEST_SANITIZED) && defined(__linux__)
namespace {
// Minor and major page faults of the calling thread while `f` runs.
template <class F>
std::pair<long, long> faults_during(F f) {
  rusage a{}, b{};
  getrusage(RUSAGE_THREAD, &a);
  f();
  getrusage(RUSAGE_THREAD, &b);
  return {b.ru_minflt - a.ru_minflt, b.ru_majflt - a.ru_majflt};
}
}  // namespace

TEST_SUITE("session") {
  TEST_CASE("page faults: after init with prefault and lock_memory, 1,000 steps take none (without: they do)") {
    TempDir tmp;
    struct Case {
      const char* ckpt;
      const char* dtype;
    };
    for (const Case c : {Case{"examples/demo_model/checkpoint", "q8"}, Case{"examples/sensor_demo/checkpoint", "f32"}}) {
      CAPTURE(c.ckpt);
      // Three copies of the file: one warms the code and the stack, one is opened plainly, one prefaulted.
      std::string paths[3];
      for (int i = 0; i < 3; ++i) {
        paths[i] = tmp.file(std::to_string(i) + ".rill");
        const std::string e = convert_ckpt(src_dir() + "/" + c.ckpt, paths[i], c.dtype);
        REQUIRE_MESSAGE(e.empty(), e);
      }
      auto run = [&](bool options, std::pair<long, long>* faults) {
        ModelOptions mo;
        mo.prefault = mo.lock_memory = options;
        LoadedModel lm;
        Error e;
        REQUIRE_MESSAGE(LoadedModel::open(paths[options ? 2 : 1].c_str(), mo, &lm, &e) == Status::kOk, e.message);
        SessionOptions so;
        so.prefault = so.lock_memory = options;
        OwnedSession os;
        REQUIRE_MESSAGE(OwnedSession::create(lm.model(), so, &os, &e) == Status::kOk, e.message);
        const ModelInfo info = lm.model().info();
        std::vector<float> out(info.d_output, 0.f), x(info.d_input ? info.d_input : 1, 0.f);
        Session& s = os.session();
        *faults = faults_during([&] {
          for (int k = 0; k < 1000; ++k) {
            if (info.d_input) {
              x[0] = static_cast<float>(std::sin(0.01 * k));
              if (s.step_vector(x.data(), x.size(), out.data(), out.size()) != Status::kOk) return;
            } else if (s.step(k % 200 + 32, out.data(), out.size()) != Status::kOk) {
              return;
            }
          }
        });
      };
      {  // warm: the step code and the stack, from a third file
        LoadedModel lm;
        REQUIRE(LoadedModel::open(paths[0].c_str(), ModelOptions{}, &lm) == Status::kOk);
        OwnedSession os;
        REQUIRE(OwnedSession::create(lm.model(), SessionOptions{}, &os) == Status::kOk);
        const ModelInfo info = lm.model().info();
        std::vector<float> out(info.d_output), x(info.d_input ? info.d_input : 1, 0.5f);
        for (int k = 0; k < 20; ++k)
          CHECK((info.d_input ? os.session().step_vector(x.data(), x.size(), out.data(), out.size())
                              : os.session().step(k + 32, out.data(), out.size())) == Status::kOk);
      }
      std::pair<long, long> plain{}, locked{};
      run(false, &plain);
      run(true, &locked);
      MESSAGE("page faults over 1,000 steps: plain open ", plain.first, " minor / ", plain.second,
              " major; prefault + lock_memory ", locked.first, " / ", locked.second);
      // The measurement sees the weight pages fault in (the demo's 1.2 MiB of q8 weights; the sensor
      // model's 56 KiB file is read whole by init's checks, so it has none to fault in either way).
      if (c.dtype == std::string("q8")) CHECK(plain.first + plain.second > 0);
      CHECK(locked.first == 0);
      CHECK(locked.second == 0);
    }
  }

  TEST_CASE("lock_memory: the arena is locked while the session lives, a clone's arena too") {
    // Each arena is a mapping of its own, so /proc/self/smaps says how much of it is locked.
    auto locked_kib = [](const void* p) {
      long kib = -1;
      if (FILE* f = std::fopen("/proc/self/smaps", "r")) {
        char line[512];
        bool in = false;
        const auto a = reinterpret_cast<uintptr_t>(p);
        while (std::fgets(line, sizeof line, f)) {
          unsigned long lo = 0, hi = 0;
          if (std::sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && std::strchr(line, '-') < std::strchr(line, ' ')) {
            in = a >= lo && a < hi;
          } else if (in && std::sscanf(line, "Locked: %ld kB", &kib) == 1) {
            break;
          }
        }
        std::fclose(f);
      }
      return kib;
    };
    struct Mapping {
      void* p = MAP_FAILED;
      size_t n = 0;
      explicit Mapping(size_t bytes) : n(bytes) {
        p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(p != MAP_FAILED);
      }
      ~Mapping() { munmap(p, n); }
    };
    ConvertedModel cm(src_dir() + "/examples/demo_model/checkpoint", "q8");
    SessionOptions so;
    so.prefill_chunk = 64;
    so.lock_memory = true;
    size_t bytes = 0;
    REQUIRE(Session::footprint(cm.model(), so, &bytes) == Status::kOk);
    const long want_kib = static_cast<long>(bytes / 1024);
    Mapping a(bytes), b(bytes);
    CHECK(locked_kib(a.p) == 0);
    {
      Session s, copy;
      Error e;
      REQUIRE_MESSAGE(Session::init(cm.model(), so, a.p, bytes, &s, &e) == Status::kOk, e.message);
      CHECK(locked_kib(a.p) >= want_kib);
      REQUIRE(s.clone(b.p, bytes, &copy, &e) == Status::kOk);
      CHECK(locked_kib(b.p) >= want_kib);  // the copy's arena is locked as well
      MESSAGE("arena ", want_kib, " KiB: locked ", locked_kib(a.p), " KiB, clone's ", locked_kib(b.p), " KiB");
    }
    CHECK(locked_kib(a.p) == 0);  // the sessions are gone: their arenas are unlocked
    CHECK(locked_kib(b.p) == 0);
  }
}
#endif

TEST_SUITE("oom") {
  TEST_CASE("memory the system cannot provide is kOutOfMemory, not a too-small arena") {
    AlignedBuffer b;
    CHECK(AlignedBuffer::allocate(SIZE_MAX / 2, &b) == Status::kOutOfMemory);
    CHECK(b.data() == nullptr);
    CHECK(AlignedBuffer::allocate(64, &b) == Status::kOk);
  }
}
