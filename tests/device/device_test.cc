// The device backend through the public API, against the goldens and against the CPU backend.
//
// Built twice: into rill_tests against a host emulation of a device (tests/device/host_device.h), which
// runs Session's and Model's whole device path (device arena, staging, recorded decode steps, state
// blobs, release) and must match the CPU bit for bit; and into rill_cuda_tests (RILL_CUDA builds)
// against the CUDA backend, within the bounds stated in each case. rill_cuda_tests reports itself
// skipped (ctest: "Skipped", exit 77) where there is no CUDA device.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "rill_generated.h"
#include "test_util.h"
#if defined(RILL_TEST_CUDA_EMU)
#include "emu_backend.h"
#elif !defined(RILL_TEST_REAL_CUDA)
#include "device/host_device.h"
#endif

using namespace rill;
using namespace rill_test;

namespace {

// What runs behind Backend::kCuda, and the failures each can be made to show.
#if defined(RILL_TEST_REAL_CUDA)
constexpr bool kExact = false;  // other kernels: bounds, not bits
constexpr bool kCanInject = false;
struct DeviceUnderTest {
  DeviceUnderTest() {}  // the CUDA backend itself
};
void limit_device_memory(size_t) {}
void fail_next_pass() {}
uint64_t replays() { return 0; }
#elif defined(RILL_TEST_CUDA_EMU)
constexpr bool kExact = false;  // the CUDA kernels on the CPU: bounds, not bits
constexpr bool kCanInject = true;
struct DeviceUnderTest {
  DeviceUnderTest() { override_backend(Backend::kCuda, cuda_emu_backend()); }
  ~DeviceUnderTest() {
    override_backend(Backend::kCuda, nullptr);
    cuda_emu::set_memory_limit(size_t(8) << 30);
    cuda_emu::fail_next_copies(0);
  }
};
// Device memory beyond what is in use now: `bytes` (SIZE_MAX: no limit).
void limit_device_memory(size_t bytes) {
  size_t free_b = 0, total_b = 0;
  cudaMemGetInfo(&free_b, &total_b);
  cuda_emu::set_memory_limit(bytes == SIZE_MAX ? size_t(8) << 30 : total_b - free_b + bytes);
}
void fail_next_pass() { cuda_emu::fail_next_copies(1); }  // its first copy fails on the stream
uint64_t replays() { return cuda_emu::counters().graph_launches; }
#else
constexpr bool kExact = true;  // the CPU's own ops behind the device seam
constexpr bool kCanInject = true;
struct DeviceUnderTest {
  DeviceUnderTest() {
    override_backend(Backend::kCuda, host_device_backend());
    host_device_control() = HostDeviceControl{};
  }
  ~DeviceUnderTest() { override_backend(Backend::kCuda, nullptr); }
};
void limit_device_memory(size_t bytes) { host_device_control().memory_limit = bytes; }
void fail_next_pass() { host_device_control().fail_sync = true; }
uint64_t replays() { return host_device_control().replays; }
#endif

ModelOptions on_device() {
  ModelOptions o;
  o.backend = Backend::kCuda;
  o.device = 0;
  return o;
}

// One converted file, opened on the CPU and on the device.
struct Both {
  TempDir tmp;
  LoadedModel cpu, dev;
  Both(const std::string& ckpt, const std::string& dtype) {
    const std::string path = tmp.file("m.rill");
    const std::string err = convert_ckpt(ckpt, path, dtype);
    REQUIRE_MESSAGE(err.empty(), err);
    Error e;
    REQUIRE_MESSAGE(LoadedModel::open(path.c_str(), ModelOptions{}, &cpu, &e) == Status::kOk, e.message);
    REQUIRE_MESSAGE(LoadedModel::open(path.c_str(), on_device(), &dev, &e) == Status::kOk, e.message);
  }
  size_t V() const { return cpu.model().info().d_output; }
};

OwnedSession session_of(const Model& m, uint32_t chunk = 32) {
  OwnedSession s;
  SessionOptions o;
  o.prefill_chunk = chunk;
  Error e;
  REQUIRE_MESSAGE(OwnedSession::create(m, o, &s, &e) == Status::kOk, e.message);
  return s;
}

double peak(const std::vector<float>& v) {
  double p = 0;
  for (float x : v) p = std::max<double>(p, std::fabs(x));
  return p;
}
double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max<double>(d, std::fabs(double(a[i]) - b[i]));
  return a.size() == b.size() ? d : INFINITY;
}
std::vector<unsigned char> state_of(const Session& s) {
  std::vector<unsigned char> b(s.state_size());
  REQUIRE(s.state_copy_out(b.data(), b.size()) == Status::kOk);
  return b;
}

// The CUDA emulation runs every case in full once (release build, forward order); in the reverse order
// and under the sanitizers it runs a lighter set (one fixture per architecture, fewer steps): the
// kernels and paths are the same, and the suite stays within its time.
#if defined(RILL_TEST_CUDA_EMU)
#if defined(__SANITIZE_ADDRESS__)
bool light() { return true; }
#else
bool light() { return cuda_emu::thread_order() == cuda_emu::Order::kReverse; }
#endif
#else
bool light() { return false; }
#endif
// The fixtures at the released head sizes of the fla family (head_k 128-256, head_v 256-512): on a
// device they run with the rest; the emulation, which runs every CUDA thread in turn, takes minutes over
// their states and leaves them to the small-head fixtures of the same architectures, which go through
// the same kernels (key loops of several lane strides included, by rwkv6_hf_world's head of 64).
bool emulation_skips(const std::string& name) {
#if defined(RILL_TEST_CUDA_EMU)
  return name == "gated_deltanet_hf_bf16" || name == "gla_hf_bf16" || name == "retnet_hf_bf16";
#else
  (void)name;
  return false;
#endif
}

const char* kGoldenCases[] = {"mamba1_awkward",  "mamba1_hf_f16_tied", "mamba2_groups",           "mamba2_tied_bf16",
                              "rwkv7_fla_world", "rwkv7_blink_bf16",   "recurrent_gemma_awkward", "recurrent_gemma_tied_bf16",
                              "granite_hybrid_nope", "granite_hybrid_rope_bf16", "nemotron_h_bf16",
                              "rwkv6_hf_world", "rwkv6_blink_bf16", "gated_deltanet_hf_bf16", "gated_deltanet_gva_tied",
                              "gla_hf_bf16", "gla_conv_tied", "retnet_hf_bf16", "retnet_conv_tied"};

}  // namespace

#if defined(RILL_TEST_CUDA_EMU)
#define RILL_DEVICE_SUITE "cuda_emu_device"  // counted and required on its own by the test script
#else
#define RILL_DEVICE_SUITE "device"
#endif
TEST_SUITE(RILL_DEVICE_SUITE) {
  TEST_CASE("every golden fixture on the device: f32 within 1e-4 of the golden's largest logit, f16 within 2e-3 of the CPU's f16") {
    DeviceUnderTest dut;
    for (const std::string name : kGoldenCases) {
      if (emulation_skips(name)) continue;
      if (light() && name != "mamba1_hf_f16_tied" && name != "mamba2_groups" && name != "rwkv7_fla_world" &&
          name != "recurrent_gemma_awkward" && name != "nemotron_h_bf16" && name != "rwkv6_hf_world" &&
          name != "gated_deltanet_gva_tied" && name != "gla_conv_tied" &&
          name != "retnet_conv_tied")
        continue;
      CAPTURE(name);
      const std::string dir = golden_dir(name);
      const std::vector<int32_t> tokens = read_tokens(dir + "/tokens.txt");
      const Npy golden = read_npy(dir + "/logits.npy");
      for (const std::string dtype : {"f32", "f16"}) {
        CAPTURE(dtype);
        Both b(dir, dtype);
        const size_t V = b.V();
        OwnedSession c = session_of(b.cpu.model()), d = session_of(b.dev.model());
        std::vector<float> lc(V), ld(V);
        double worst_golden = 0, worst_cpu = 0, scale = golden.max_abs();
        for (size_t t = 0; t < tokens.size(); ++t) {
          REQUIRE(c.session().step(tokens[t], lc.data(), V) == Status::kOk);
          REQUIRE(d.session().step(tokens[t], ld.data(), V) == Status::kOk);
          worst_golden = std::max<double>(worst_golden, golden.row_diff(t, ld.data()));
          worst_cpu = std::max(worst_cpu, max_diff(lc, ld));
          if (kExact) REQUIRE_MESSAGE(lc == ld, "step " << t);
        }
        MESSAGE(name << " " << dtype << ": device vs golden " << worst_golden << ", vs CPU " << worst_cpu << " (max|logit| "
                     << scale << ")");
        if (dtype == "f32") CHECK(worst_golden <= 1e-4 * scale);
        else CHECK(worst_cpu <= 2e-3 * scale);
        if (kExact) CHECK(state_of(c.session()) == state_of(d.session()));
      }
    }
  }

  TEST_CASE("q8 and q4 decode on the device agree with the CPU's top-1 on >= 99 % of the demo model's held-out bytes") {
    DeviceUnderTest dut;
    // 600 bytes; 200 on the CUDA emulation (its kernels run on CPU fibers), where top-1 may differ on
    // 3 % (near-ties summed in another order; a wrong weight layout differs on most bytes).
    const bool emu = kCanInject && !kExact;
    const std::string text = read_file(src_dir() + "/examples/demo_model/heldout.txt").substr(0, emu ? (light() ? 100 : 200) : 600);
    for (const std::string dtype : {"q8", "q4"}) {
      CAPTURE(dtype);
      Both b(src_dir() + "/examples/demo_model/checkpoint", dtype);
      const size_t V = b.V();
      OwnedSession c = session_of(b.cpu.model()), d = session_of(b.dev.model());
      std::vector<float> lc(V), ld(V);
      size_t same = 0;
      for (unsigned char ch : text) {
        REQUIRE(c.session().step(ch, lc.data(), V) == Status::kOk);
        REQUIRE(d.session().step(ch, ld.data(), V) == Status::kOk);
        const size_t n = std::min<size_t>(V, 256);  // the bytes (the rest is padding)
        same += argmax(lc.data(), n) == argmax(ld.data(), n);
      }
      const double top1 = double(same) / text.size();
      MESSAGE(dtype << " device vs CPU top-1 agreement " << top1 << " over " << text.size() << " bytes");
      CHECK(top1 >= (emu ? 0.97 : 0.99));
      if (kExact) CHECK(same == text.size());
    }
  }

  TEST_CASE("device prefill leaves the state stepping leaves (f32: 1e-4 of the largest logit)") {
    DeviceUnderTest dut;
    for (const std::string name : {"mamba1_awkward", "mamba2_groups", "rwkv7_fla_world", "recurrent_gemma_awkward"}) {
      if (light() && name != "mamba2_groups" && name != "recurrent_gemma_awkward") continue;
      CAPTURE(name);
      const std::vector<int32_t> tokens = read_tokens(golden_dir(name) + "/tokens.txt");
      Both b(golden_dir(name), "f32");
      const size_t V = b.V();
      // Chunks of 7, and of 40 (longer than RecurrentGemma's window of 16: a chunk's rows overwrite its
      // own ring slots).
      OwnedSession stepped = session_of(b.dev.model()), chunked = session_of(b.dev.model(), 7),
                   long_chunks = session_of(b.dev.model(), 40);
      std::vector<float> ls(V), lp(V), ll(V);
      for (int32_t t : tokens) REQUIRE(stepped.session().step(t, ls.data(), V) == Status::kOk);
      REQUIRE(chunked.session().prefill(tokens.data(), tokens.size(), lp.data(), V) == Status::kOk);
      REQUIRE(long_chunks.session().prefill(tokens.data(), tokens.size(), ll.data(), V) == Status::kOk);
      CHECK(max_diff(ls, lp) <= 1e-4 * peak(ls));
      CHECK(max_diff(ls, ll) <= 1e-4 * peak(ls));
      if (kExact) CHECK(state_of(stepped.session()) == state_of(chunked.session()));
      if (kExact) CHECK(state_of(stepped.session()) == state_of(long_chunks.session()));
    }
  }

  TEST_CASE("state blobs move between the device and the CPU, and both continue alike") {
    DeviceUnderTest dut;
    for (const char* name : {"mamba1_awkward", "mamba2_groups", "rwkv7_fla_world", "recurrent_gemma_awkward"}) {
      CAPTURE(name);
      const std::vector<int32_t> tokens = read_tokens(golden_dir(name) + "/tokens.txt");
      const size_t half = tokens.size() / 2;
      Both b(golden_dir(name), "f32");
      const size_t V = b.V();
      OwnedSession d = session_of(b.dev.model()), c = session_of(b.cpu.model());
      REQUIRE(d.session().prefill(tokens.data(), half, nullptr, 0) == Status::kOk);
      REQUIRE(c.session().prefill(tokens.data(), half, nullptr, 0) == Status::kOk);
      const std::vector<unsigned char> from_dev = state_of(d.session()), from_cpu = state_of(c.session());
      REQUIRE(from_dev.size() == from_cpu.size());
      // Across: the device's state into a fresh CPU session, the CPU's into a fresh device session.
      OwnedSession c2 = session_of(b.cpu.model()), d2 = session_of(b.dev.model());
      REQUIRE(c2.session().state_copy_in(from_dev.data(), from_dev.size()) == Status::kOk);
      REQUIRE(d2.session().state_copy_in(from_cpu.data(), from_cpu.size()) == Status::kOk);
      std::vector<float> a(V), bb(V), ref(V);
      for (size_t t = half; t < tokens.size(); ++t) {
        REQUIRE(c.session().step(tokens[t], ref.data(), V) == Status::kOk);
        REQUIRE(c2.session().step(tokens[t], a.data(), V) == Status::kOk);
        REQUIRE(d2.session().step(tokens[t], bb.data(), V) == Status::kOk);
        CHECK(max_diff(ref, a) <= 1e-4 * peak(ref));
        CHECK(max_diff(ref, bb) <= 1e-4 * peak(ref));
        if (kExact) CHECK((ref == a && ref == bb));
      }
    }
  }

  TEST_CASE("a replayed decode step equals the same step run eagerly (Batch of one), and follows a moved session") {
    DeviceUnderTest dut;
    const std::vector<int32_t> tokens = read_tokens(golden_dir("mamba2_groups") + "/tokens.txt");
    Both b(golden_dir("mamba2_groups"), "f32");
    const size_t V = b.V();
    OwnedSession replayed = session_of(b.dev.model()), eager = session_of(b.dev.model());
    AlignedBuffer arena;  // outlives the batch, whose device handle it holds
    Batch batch;
    size_t bytes = 0;
    BatchOptions bo;
    bo.max_streams = 1;
    REQUIRE(Batch::footprint(b.dev.model(), bo, &bytes) == Status::kOk);
    REQUIRE(AlignedBuffer::allocate(bytes, &arena) == Status::kOk);
    REQUIRE(Batch::init(b.dev.model(), bo, arena.data(), arena.size(), &batch) == Status::kOk);
    Session moved = static_cast<Session&&>(replayed.session());  // the recorded step belongs to the pass, not the object
    std::vector<float> lr(V), le(V);
    Session* one[1] = {&eager.session()};
    const uint64_t replays0 = replays();
    for (int32_t t : tokens) {
      REQUIRE(moved.step(t, lr.data(), V) == Status::kOk);
      REQUIRE(batch.step(one, &t, 1, le.data(), V) == Status::kOk);
      REQUIRE(max_diff(lr, le) <= 1e-5 * peak(le));
      if (kExact) REQUIRE(lr == le);
    }
    CHECK(!replayed.session().ok());
    if (kCanInject) CHECK(replays() - replays0 == tokens.size());  // every Session::step was a replay
  }

  TEST_CASE("many sessions on one device model: interleaved, and in one Batch::step, each as if alone") {
    DeviceUnderTest dut;
    const std::vector<int32_t> tokens = read_tokens(golden_dir("rwkv7_fla_world") + "/tokens.txt");
    Both b(golden_dir("rwkv7_fla_world"), "f32");
    const size_t V = b.V(), S = 4, T = std::min<size_t>(tokens.size(), light() ? 8 : 24);
    std::vector<OwnedSession> alone, mixed;
    for (size_t s = 0; s < S; ++s) alone.push_back(session_of(b.dev.model())), mixed.push_back(session_of(b.dev.model()));
    std::vector<std::vector<float>> want(S, std::vector<float>(V));
    for (size_t s = 0; s < S; ++s)  // stream s takes the tokens shifted by s
      for (size_t t = 0; t < T; ++t) REQUIRE(alone[s].session().step(tokens[(t + s) % tokens.size()], want[s].data(), V) == Status::kOk);
    BatchOptions bo;
    bo.max_streams = S;
    OwnedBatch owned;
    REQUIRE(OwnedBatch::create(b.dev.model(), bo, &owned) == Status::kOk);
    Batch& batch = owned.get();
    std::vector<float> got(S * V), one(V);
    std::vector<Session*> ptrs;
    for (auto& m : mixed) ptrs.push_back(&m.session());
    for (size_t t = 0; t < T; ++t) {
      std::vector<int32_t> toks(S);
      for (size_t s = 0; s < S; ++s) toks[s] = tokens[(t + s) % tokens.size()];
      if (t % 2) {
        REQUIRE(batch.step(ptrs.data(), toks.data(), S, got.data(), S * V) == Status::kOk);
      } else {
        for (size_t s = 0; s < S; ++s) {
          REQUIRE(mixed[s].session().step(toks[s], one.data(), V) == Status::kOk);
          std::copy(one.begin(), one.end(), got.begin() + s * V);
        }
      }
    }
    for (size_t s = 0; s < S; ++s) {
      const std::vector<float> row(got.begin() + s * V, got.begin() + (s + 1) * V);
      CHECK(max_diff(row, want[s]) <= 1e-4 * peak(want[s]));
      if (kExact) CHECK(state_of(mixed[s].session()) == state_of(alone[s].session()));
    }
  }

  TEST_CASE("vector models on the device: every step's output, within 1e-4 of the CPU's largest") {
    DeviceUnderTest dut;
    for (const char* name : {"s4d_prenorm_mean", "mamba1_vector", "mamba2_vector"}) {
      CAPTURE(name);
      Both b(golden_dir(name), "f32");
      const ModelInfo info = b.cpu.model().info();
      const size_t T = 40, din = info.d_input, dout = info.d_output;
      std::vector<float> in(T * din);
      for (size_t i = 0; i < in.size(); ++i) in[i] = std::sin(0.37f * static_cast<float>(i));
      OwnedSession c = session_of(b.cpu.model(), 8), d = session_of(b.dev.model(), 8);
      std::vector<float> oc(T * dout), od(T * dout), last(dout);
      REQUIRE(c.session().prefill_vectors(in.data(), T, in.size(), oc.data(), oc.size()) == Status::kOk);
      REQUIRE(d.session().prefill_vectors(in.data(), T - 1, (T - 1) * din, od.data(), (T - 1) * dout) == Status::kOk);
      REQUIRE(d.session().step_vector(in.data() + (T - 1) * din, din, last.data(), dout) == Status::kOk);
      std::copy(last.begin(), last.end(), od.begin() + (T - 1) * dout);
      CHECK(max_diff(oc, od) <= 1e-4 * peak(oc));
      if (kExact) CHECK(oc == od);
    }
  }

  TEST_CASE("sensor streams on the device in one Batch::step_vectors, and a NaN stream skipped, as if alone") {
    DeviceUnderTest dut;
    Both b(golden_dir("s4d_prenorm_mean"), "f32");
    const ModelInfo info = b.cpu.model().info();
    const size_t S = 3, T = 6, din = info.d_input, dout = info.d_output;
    std::vector<OwnedSession> alone, streams;
    for (size_t s = 0; s < S; ++s) alone.push_back(session_of(b.cpu.model())), streams.push_back(session_of(b.dev.model()));
    BatchOptions bo;
    bo.max_streams = S;
    OwnedBatch owned;
    REQUIRE(OwnedBatch::create(b.dev.model(), bo, &owned) == Status::kOk);
    Batch& batch = owned.get();
    std::vector<Session*> ptrs;
    for (auto& m : streams) ptrs.push_back(&m.session());
    std::vector<float> x(S * din), y(S * dout), want(dout);
    Status st[S];
    for (size_t t = 0; t < T; ++t) {
      for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.3f * static_cast<float>(t * x.size() + i));
      const bool skip = t == T - 1;  // the last step: stream 1's row is NaN and skipped
      if (skip) x[din] = std::nanf("");
      REQUIRE(batch.step_vectors(ptrs.data(), x.data(), S, x.size(), y.data(), y.size(), st,
                                 skip ? BadStream::kSkip : BadStream::kRefuseAll) == Status::kOk);
      for (size_t s = 0; s < S; ++s) {
        CAPTURE(t);
        CAPTURE(s);
        if (skip && s == 1) {
          CHECK(st[s] == Status::kNonFinite);
          CHECK(std::isnan(y[s * dout]));
          continue;
        }
        REQUIRE(alone[s].session().step_vector(x.data() + s * din, din, want.data(), dout) == Status::kOk);
        const std::vector<float> row(y.begin() + s * dout, y.begin() + (s + 1) * dout);
        CHECK(max_diff(row, want) <= 1e-4 * std::max(1.0, peak(want)));
        if (kExact) CHECK(row == want);
      }
    }
    if (kExact)
      for (size_t s = 0; s < S; ++s) CHECK(state_of(streams[s].session()) == state_of(alone[s].session()));
  }

  TEST_CASE("errors on the device leave the state unchanged") {
    DeviceUnderTest dut;
    Both b(golden_dir("mamba1_awkward"), "f32");
    const size_t V = b.V();
    OwnedSession d = session_of(b.dev.model());
    std::vector<float> l(V, 7.f);
    REQUIRE(d.session().step(3, l.data(), V) == Status::kOk);
    const std::vector<unsigned char> before = state_of(d.session());
    const int32_t bad[3] = {1, static_cast<int32_t>(V), 2};
    CHECK(d.session().step(-1, l.data(), V) == Status::kTokenRange);
    CHECK(d.session().step(static_cast<int32_t>(V), l.data(), V) == Status::kTokenRange);
    CHECK(d.session().prefill(bad, 3, l.data(), V) == Status::kTokenRange);
    CHECK(d.session().step(1, l.data(), V - 1) == Status::kInvalidArgument);
    CHECK(state_of(d.session()) == before);
    CHECK(d.session().state_tensor("layers.0.ssm", nullptr) == nullptr);  // device memory: state_copy_out
    // A device index that does not exist, and a session that does not fit in device memory.
    Error e;
    ModelOptions far = on_device();
    far.device = 4096;
    LoadedModel none;
    CHECK(LoadedModel::open(b.tmp.file("m.rill").c_str(), far, &none, &e) == Status::kNoBackend);
    MESSAGE("device 4096: " << e.message);
    if (kCanInject) {
      limit_device_memory(1024);
      OwnedSession tiny;
      CHECK(OwnedSession::create(b.dev.model(), SessionOptions{}, &tiny, &e) == Status::kOutOfMemory);
      MESSAGE(e.message);
      limit_device_memory(SIZE_MAX);
      // A device that fails a pass: kDeviceError, and the caller's logits are not written.
      fail_next_pass();
      std::fill(l.begin(), l.end(), 7.f);
      CHECK(d.session().step(4, l.data(), V) == Status::kDeviceError);
      CHECK(l == std::vector<float>(V, 7.f));
#if !defined(RILL_TEST_CUDA_EMU) && !defined(RILL_TEST_REAL_CUDA)
      host_device_control().fail_sync = false;
#endif
    }
  }

  TEST_CASE("1000 device steps make no device allocation; sessions and models give back what they took") {
    DeviceUnderTest dut;
    const DeviceHooks* h = find_backend(Backend::kCuda)->device;
    REQUIRE(h != nullptr);
    // 1000 steps of Mamba-1 (100 in the lighter runs), and RecurrentGemma's f16 ring (window 16) wrapped
    // many times: 1000 steps on the host emulation and a real device, 150 on the CUDA emulation.
    const bool emu = kCanInject && !kExact;
    const struct {
      const char* name;
      const char* dtype;
      int steps;
    } runs[] = {{"mamba1_awkward", "f32", light() ? 100 : 1000}, {"recurrent_gemma_awkward", "f16", emu ? 150 : 1000}};
    for (const auto& run : runs) {
      CAPTURE(run.name);
      uint64_t a0, f0, a1, f1, a2, f2;
      h->alloc_counts(&a0, &f0);
      {
        Both b(golden_dir(run.name), run.dtype);
        const size_t V = b.V();
        OwnedSession d = session_of(b.dev.model());
        std::vector<float> l(V);
        REQUIRE(d.session().step(1, l.data(), V) == Status::kOk);
        h->alloc_counts(&a1, &f1);
        for (int i = 0; i < run.steps; ++i)
          REQUIRE(d.session().step(static_cast<int32_t>(i % V), i % 3 ? l.data() : nullptr, i % 3 ? V : 0) == Status::kOk);
        h->alloc_counts(&a2, &f2);
        CHECK(a2 == a1);
        CHECK(f2 == f1);
        CHECK(a1 > a0);
      }
      h->alloc_counts(&a2, &f2);
      CHECK(a2 - a0 == f2 - f0);  // the session's arena and the model's weights were freed
    }
  }


  TEST_CASE("one thread records sessions' decode steps while another resets and copies state in: nothing breaks") {
    DeviceUnderTest dut;
    Both b(golden_dir("mamba1_awkward"), "f32");
    const size_t V = b.V();
    OwnedSession other = session_of(b.dev.model());
    std::vector<float> l(V);
    REQUIRE(other.session().step(3, l.data(), V) == Status::kOk);
    const std::vector<unsigned char> blob = state_of(other.session());
#if defined(RILL_TEST_CUDA_EMU)
    const uint64_t violations0 = cuda_emu::counters().capture_violations;
#endif
    std::atomic<bool> stop{false};
    std::atomic<int> failed{0}, rounds{0};
    std::thread helper([&] {  // what another thread of the application does meanwhile
      while (!stop.load()) {
        if (other.session().reset() != Status::kOk) ++failed;
        if (other.session().state_copy_in(blob.data(), blob.size()) != Status::kOk) ++failed;
        ++rounds;
      }
    });
    int made = 0;
    for (int i = 0; i < 12; ++i) {  // each Session::init captures its two decode steps
      OwnedSession s;
      Error e;
      const Status st = OwnedSession::create(b.dev.model(), SessionOptions{}, &s, &e);
      if (st == Status::kOk) ++made;
      else MESSAGE("session " << i << ": " << e.message);
    }
    stop = true;
    helper.join();
    MESSAGE(made << " sessions recorded while the other thread made " << rounds.load() << " resets and state copies");
    CHECK(made == 12);
    CHECK(failed.load() == 0);
#if defined(RILL_TEST_CUDA_EMU)
    CHECK(cuda_emu::counters().capture_violations == violations0);
#endif
    CHECK(state_of(other.session()) == blob);
  }

  TEST_CASE("a model whose tokenizer cannot be bound gives its device weights back") {
    DeviceUnderTest dut;
    const DeviceHooks* h = find_backend(Backend::kCuda)->device;
    TempDir tmp;
    const std::string path = tmp.file("m.rill"), bad = tmp.file("bad.rill");
    const std::string err = convert_ckpt(src_dir() + "/examples/demo_model/checkpoint", path, "f32");  // byte tokenizer
    REQUIRE_MESSAGE(err.empty(), err);
    std::string bytes = read_file(path);
    auto* model = fb::GetMutableSizePrefixedModel(bytes.data());
    REQUIRE(model->tokenizer() != nullptr);
    REQUIRE(model->mutable_tokenizer()->mutate_kind(static_cast<fb::TokenizerKind>(200)));  // a kind from the future
    write_file(bad, bytes);
    uint64_t a0, f0, a1, f1;
    h->alloc_counts(&a0, &f0);
    LoadedModel m;
    Error e;
    CHECK(LoadedModel::open(bad.c_str(), on_device(), &m, &e) == Status::kUnsupported);
    MESSAGE(e.message);
    h->alloc_counts(&a1, &f1);
    CHECK(a1 > a0);  // the weights went to the device
    CHECK(a1 - a0 == f1 - f0);
  }

#if defined(RILL_TEST_CUDA_EMU)
  TEST_CASE("a failed device copy is reported: reset, state copies and Session::init return kDeviceError") {
    DeviceUnderTest dut;
    Both b(golden_dir("mamba2_groups"), "f32");
    OwnedSession d = session_of(b.dev.model());
    std::vector<unsigned char> blob = state_of(d.session());
    cuda_emu::fail_next_copies(1);
    CHECK(d.session().reset() == Status::kDeviceError);
    cuda_emu::fail_next_copies(1);
    CHECK(d.session().state_copy_out(blob.data(), blob.size()) == Status::kDeviceError);
    blob = state_of(d.session());
    cuda_emu::fail_next_copies(1);
    CHECK(d.session().state_copy_in(blob.data(), blob.size()) == Status::kDeviceError);
    cuda_emu::fail_next_copies(1);  // Session::init's first copy (the state pointers)
    OwnedSession broken;
    Error e;
    CHECK(OwnedSession::create(b.dev.model(), SessionOptions{}, &broken, &e) == Status::kDeviceError);
    MESSAGE(e.message);
    REQUIRE(d.session().reset() == Status::kOk);  // the device works again
  }

  // Counts do not depend on the thread order or the sanitizers: counted in the full run only.
  TEST_CASE("shaped for a GPU: one graph launch per decode token, weights read at most twice per 64-token chunk, launches independent of rows" *
            doctest::skip(light())) {
    DeviceUnderTest dut;
    struct Case {
      std::string ckpt, dtype;
    };
    const Case cases[] = {{src_dir() + "/examples/demo_model/checkpoint", "f16"},
                          {src_dir() + "/examples/demo_model/checkpoint", "q4"},
                          {golden_dir("recurrent_gemma_awkward"), "f32"}};
    for (const Case& c : cases) {
      CAPTURE(c.ckpt);
      CAPTURE(c.dtype);
      Both b(c.ckpt, c.dtype);
      const size_t V = b.V();
      std::vector<int32_t> prompt(64);
      for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7 + 1) % V);
      OwnedSession s = session_of(b.dev.model(), 64);
      std::vector<float> l(V);
      // A decode step: one graph launch.
      cuda_emu::Counters c0 = cuda_emu::counters();
      for (int t = 0; t < 5; ++t) REQUIRE(s.session().step(prompt[t], l.data(), V) == Status::kOk);
      cuda_emu::Counters c1 = cuda_emu::counters();
      CHECK(c1.graph_launches - c0.graph_launches == 5);
      const uint64_t step_bytes = (c1.weight_bytes - c0.weight_bytes) / 5, step_launches = (c1.launches - c0.launches) / 5;
      // A 64-token chunk: the same kernels (none per row), each weight read at most twice.
      REQUIRE(s.session().reset() == Status::kOk);
      c0 = cuda_emu::counters();
      REQUIRE(s.session().prefill(prompt.data(), prompt.size(), l.data(), V) == Status::kOk);
      c1 = cuda_emu::counters();
      const uint64_t chunk_bytes = c1.weight_bytes - c0.weight_bytes, chunk_launches = c1.launches - c0.launches;
      MESSAGE(c.dtype << ": decode step " << step_launches << " kernels reading " << step_bytes
                      << " weight bytes; 64-token chunk " << chunk_launches << " kernels reading " << chunk_bytes
                      << " (" << double(chunk_bytes) / double(step_bytes) << "x); file weights "
                      << b.dev.model().info().weight_bytes);
      CHECK(step_bytes > 0);
      CHECK(step_bytes <= b.dev.model().info().weight_bytes);
      CHECK(chunk_bytes <= 2 * step_bytes);
      CHECK(chunk_launches == step_launches);
    }
  }

  TEST_CASE("Session::init puts every row's state pointer on the device in one copy") {
    DeviceUnderTest dut;
    Both b(golden_dir("mamba1_awkward"), "f32");
    uint64_t per_rows[2];
    const uint32_t rows[2] = {1, 64};
    for (int k = 0; k < 2; ++k) {
      const uint64_t c0 = cuda_emu::counters().copies;
      OwnedSession s = session_of(b.dev.model(), rows[k]);
      per_rows[k] = cuda_emu::counters().copies - c0;
    }
    MESSAGE("copies at Session::init: " << per_rows[0] << " for 1 row, " << per_rows[1] << " for 64 rows");
    CHECK(per_rows[0] == per_rows[1]);
    CHECK(per_rows[1] <= 2);  // the state pointers, the reset
  }
#endif
}
