// Sessions on many threads over one shared Model, and what a shared thread pool may and may not make
// a step wait for.
//   suite "threads": no pool; run under ThreadSanitizer too (scripts/test.sh, build-tsan).
//   suite "pool": rill's ThreadPool shared between stepping threads (pthreadpool is not instrumented,
//   so these run in the release and ASan builds only).
#include <doctest/doctest.h>

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "test_util.h"

using namespace rill;
using namespace rill_test;

namespace {

// Token t of stream s: a fixed pseudo-random sequence per stream.
int32_t token(size_t s, size_t t, size_t V) {
  uint64_t x = (s + 1) * 0x9E3779B97F4A7C15ull + t * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  return static_cast<int32_t>(x % V);
}

// FNV-1a over every step's logits, and the final state blob.
struct Trace {
  uint64_t logits_hash = 1469598103934665603ull;
  std::vector<unsigned char> state;
  bool ok = true;
};

void run_stream(Session& s, size_t stream, size_t steps, size_t V, Trace* out) {
  std::vector<float> logits(V);
  for (size_t t = 0; t < steps; ++t) {
    out->ok &= s.step(token(stream, t, V), logits.data(), V) == Status::kOk;
    const auto* b = reinterpret_cast<const unsigned char*>(logits.data());
    for (size_t i = 0; i < V * sizeof(float); ++i) out->logits_hash = (out->logits_hash ^ b[i]) * 1099511628211ull;
  }
  out->state.resize(s.state_size());
  out->ok &= s.state_copy_out(out->state.data(), out->state.size()) == Status::kOk;
}

const std::string kDemo = src_dir() + "/examples/demo_model/checkpoint";

// Steps `streams` sessions of one model, each on its own thread (all at once), and checks each against
// the same stream stepped alone on this thread first.
void check_concurrent(const Model& model, size_t streams, size_t steps, const ParallelFor* pool) {
  const size_t V = model.info().vocab_size;
  std::vector<Trace> want(streams), got(streams);
  for (size_t s = 0; s < streams; ++s) {
    OwnedSession os;
    REQUIRE(OwnedSession::create(model, SessionOptions{}, &os) == Status::kOk);
    run_stream(os.session(), s, steps, V, &want[s]);
  }
  SessionOptions so;
  so.pool = pool;
  std::vector<OwnedSession> sessions(streams);
  for (auto& os : sessions) REQUIRE(OwnedSession::create(model, so, &os) == Status::kOk);
  std::atomic<size_t> ready{0};
  std::vector<std::thread> threads;
  for (size_t s = 0; s < streams; ++s)
    threads.emplace_back([&, s] {
      ready.fetch_add(1);
      while (ready.load() < streams) std::this_thread::yield();  // start together
      run_stream(sessions[s].session(), s, steps, V, &got[s]);
    });
  for (auto& t : threads) t.join();
  for (size_t s = 0; s < streams; ++s) {
    CAPTURE(s);
    CHECK(got[s].ok);
    CHECK(got[s].logits_hash == want[s].logits_hash);
    CHECK(got[s].state == want[s].state);
  }
  // The streams saw different tokens: equal traces would mean the check compares nothing.
  CHECK(want[0].logits_hash != want[1].logits_hash);
}

}  // namespace

TEST_SUITE("threads") {
  TEST_CASE("8 sessions on 8 threads over one shared model equal stepping each alone (q8, 1500 steps each)") {
    ConvertedModel d(kDemo, "q8");
    check_concurrent(d.model(), 8, 1500, nullptr);
  }
}

TEST_SUITE("pool") {
  TEST_CASE("pool options: the workers run on the CPU set and the policy asked for, not the creator's") {
    // What each thread that ran a task saw: its CPU set and policy.
    struct Seen {
      std::mutex mu;
      std::vector<std::pair<cpu_set_t, int>> by_worker;
      pthread_t caller;
    } seen;
    seen.caller = pthread_self();
    auto probe = [](void* ctx, size_t) {
      auto* s = static_cast<Seen*>(ctx);
      if (pthread_equal(pthread_self(), s->caller)) {  // the caller takes part too: not a worker
        // It pauses on its tasks, so that workers pinned to the CPU it may be running on get one of
        // theirs before it could steal them all (a loaded machine did so for 50 rounds).
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        return;
      }
      cpu_set_t set;
      CPU_ZERO(&set);
      pthread_getaffinity_np(pthread_self(), sizeof set, &set);
      int policy = -1;
      sched_param sp{};
      pthread_getschedparam(pthread_self(), &policy, &sp);
      std::lock_guard<std::mutex> lock(s->mu);
      s->by_worker.emplace_back(set, policy);
    };
    cpu_set_t mine;
    REQUIRE(pthread_getaffinity_np(pthread_self(), sizeof mine, &mine) == 0);
    int cpu = -1;
    for (int c = 0; c < 64 && cpu < 0; ++c)
      if (CPU_ISSET(c, &mine)) cpu = c;
    REQUIRE(cpu >= 0);
    PoolOptions po;
    po.threads = 3;
    po.cpu_mask = uint64_t{1} << cpu;
    po.sched_policy = SCHED_OTHER;
    ThreadPool* pool = nullptr;
    Error e;
    REQUIRE_MESSAGE(ThreadPool::create(po, &pool, &e) == Status::kOk, e.message);
    for (int round = 0; round < 50 && seen.by_worker.empty(); ++round) pool->run(pool, probe, &seen, 64);
    ThreadPool::destroy(pool);
    REQUIRE(!seen.by_worker.empty());  // pthreadpool hands each worker its share of the 64 tasks
    for (const auto& [set, policy] : seen.by_worker) {
      CHECK(CPU_COUNT(&set) == 1);
      CHECK(CPU_ISSET(cpu, &set));
      CHECK(policy == SCHED_OTHER);
    }
    // The creating thread is untouched.
    cpu_set_t after;
    REQUIRE(pthread_getaffinity_np(pthread_self(), sizeof after, &after) == 0);
    CHECK(CPU_EQUAL(&after, &mine));

    // Out of range: refused with a message, no pool.
    po.sched_policy = SCHED_FIFO;
    po.sched_priority = 0;
    CHECK(ThreadPool::create(po, &pool, &e) == Status::kInvalidArgument);
    CHECK(pool == nullptr);
    po.sched_policy = 1234;
    CHECK(ThreadPool::create(po, &pool, &e) == Status::kInvalidArgument);
    po.sched_policy = -1;
    po.cpu_mask = 0;
    for (int c = 0; c < 64; ++c)
      if (!CPU_ISSET(c, &mine)) po.cpu_mask |= uint64_t{1} << c;
    if (po.cpu_mask) {  // only CPUs this process may not use
      CHECK(ThreadPool::create(po, &pool, &e) == Status::kInvalidArgument);
      CHECK(std::strstr(e.message, "cpu_mask") != nullptr);
    }
    // A real-time policy: granted (then the workers have it) or refused as kUnsupported with the reason.
    po.cpu_mask = 0;
    po.sched_policy = SCHED_FIFO;
    po.sched_priority = 1;
    const Status rt = ThreadPool::create(po, &pool, &e);
    if (rt == Status::kOk) {
      seen.by_worker.clear();
      for (int round = 0; round < 50 && seen.by_worker.empty(); ++round) pool->run(pool, probe, &seen, 64);
      ThreadPool::destroy(pool);
      REQUIRE(!seen.by_worker.empty());
      for (const auto& w : seen.by_worker) CHECK(w.second == SCHED_FIFO);
      int policy = -1;
      sched_param sp{};
      pthread_getschedparam(pthread_self(), &policy, &sp);
      CHECK(policy != SCHED_FIFO);  // the caller was never switched
    } else {
      CHECK(rt == Status::kUnsupported);
      CHECK(std::strstr(e.message, "EPERM") != nullptr);
    }
  }

  TEST_CASE("a pool busy with another thread's work never makes a step wait: it computes alone, same results") {
    ThreadPool* pool = nullptr;
    REQUIRE(ThreadPool::create(2, &pool) == Status::kOk);
    ConvertedModel d(kDemo, "q8");
    const Model& model = d.model();
    const size_t V = model.info().vocab_size;
    // Thread A holds the pool: its two tasks (one per pool thread; pthreadpool runs a single task inline,
    // without its lock) spin until released.
    std::atomic<bool> a_running{false}, release{false};
    struct Hold {
      std::atomic<bool>* running;
      std::atomic<bool>* release;
    } hold{&a_running, &release};
    std::thread a([&] {
      pool->run(
          pool,
          [](void* ctx, size_t) {
            auto* h = static_cast<Hold*>(ctx);
            h->running->store(true);
            while (!h->release->load()) std::this_thread::yield();
          },
          &hold, 2);
    });
    while (!a_running.load()) std::this_thread::yield();
    // Thread B steps a session on the same pool while A still holds it.
    Trace with_pool, alone;
    std::atomic<bool> b_done{false};
    SessionOptions so;
    so.pool = pool;
    OwnedSession sb, sref;
    REQUIRE(OwnedSession::create(model, so, &sb) == Status::kOk);
    REQUIRE(OwnedSession::create(model, SessionOptions{}, &sref) == Status::kOk);
    std::thread b([&] {
      run_stream(sb.session(), 3, 200, V, &with_pool);
      b_done.store(true);
    });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!b_done.load() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    const bool finished_while_held = b_done.load();
    release.store(true);
    a.join();
    b.join();
    CHECK_MESSAGE(finished_while_held, "a step waited for another thread's use of the pool");
    run_stream(sref.session(), 3, 200, V, &alone);
    CHECK(with_pool.ok);
    CHECK(with_pool.logits_hash == alone.logits_hash);
    CHECK(with_pool.state == alone.state);
    ThreadPool::destroy(pool);
  }

  TEST_CASE("8 sessions on 8 threads sharing one 2-thread pool equal stepping each alone") {
    ThreadPool* pool = nullptr;
    REQUIRE(ThreadPool::create(2, &pool) == Status::kOk);
    ConvertedModel d(kDemo, "q4");
    check_concurrent(d.model(), 8, 300, pool);
    ThreadPool::destroy(pool);
  }
}
