// Proves "no allocation after load": counting hooks on malloc/calloc/realloc/free/aligned variants
// and global operator new/delete, armed around 1000+ steps, a prefill, batch and C API steps, sampling, reset and state
// copies. A control allocation inside the window proves the hooks see allocations at all.
// (Built without sanitizers: ASan owns malloc.)
#include <doctest/doctest.h>

#include <limits>

#include <atomic>
#include <cstdlib>
#include <new>

#include "test_util.h"
#include "device/host_device.h"
#if defined(RILL_ALLOC_CUDA_EMU)
#include "emu_backend.h"
#endif
#include "rill/rill.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void __libc_free(void*);
void* __libc_memalign(size_t, size_t);
}

namespace {
std::atomic<bool> g_armed{false};
std::atomic<long> g_calls{0};
inline void count() {
  if (g_armed.load(std::memory_order_relaxed)) g_calls.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* malloc(size_t n) {
  count();
  return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) {
  count();
  return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
  count();
  return __libc_realloc(p, n);
}
void free(void* p) {
  if (p) count();
  __libc_free(p);
}
void* aligned_alloc(size_t a, size_t n) {
  count();
  return __libc_memalign(a, n);
}
void* memalign(size_t a, size_t n) {
  count();
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, size_t a, size_t n) {
  count();
  *out = __libc_memalign(a, n);
  return *out ? 0 : 12;
}
}

void* operator new(size_t n) {
  count();
  if (void* p = __libc_malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept {
  if (p) count();
  __libc_free(p);
}
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, size_t) noexcept { operator delete(p); }
void operator delete[](void* p, size_t) noexcept { operator delete(p); }

using namespace rill;
using namespace rill_test;

namespace {
long run_window(void (*body)(void*), void* ctx) {
  g_calls = 0;
  g_armed = true;
  body(ctx);
  g_armed = false;
  return g_calls.load();
}

struct Work {
  Session* s;
  Sampler* greedy;
  Sampler* sampler;
  float* logits;
  size_t V;
  int32_t* prompt;
  size_t n_prompt;
  unsigned char* snapshot;
  Batch* batch;
  Session* other;  // stepped with s in batches
  float* batch_logits;
  rill_session* cs;  // the same model through the C API
  int steps_done = 0;
  bool all_ok = true;
};

void decode(void* p) {
  Work& w = *static_cast<Work*>(p);
  w.all_ok &= w.s->prefill(w.prompt, w.n_prompt, w.logits, w.V) == Status::kOk;
  int32_t tok = 0;
  for (int i = 0; i < 1200; ++i) {
    tok = (i % 2 ? w.greedy : w.sampler)->sample(w.logits, w.V, w.V);
    w.all_ok &= tok >= 0;
    w.all_ok &= w.s->step(tok, w.logits, w.V) == Status::kOk;
    ++w.steps_done;
    if (i % 100 == 0) {
      Session* ss[] = {w.s, w.other};
      const int32_t toks[] = {tok, static_cast<int32_t>(i % w.V)};
      w.all_ok &= w.batch->step(ss, toks, 2, w.batch_logits, 2 * w.V) == Status::kOk;
      w.all_ok &= rill_session_step(w.cs, tok, w.logits, w.V) == RILL_OK;
    }
    if (i == 600) {
      w.all_ok &= w.s->state_copy_out(w.snapshot, w.s->state_size()) == Status::kOk;
      w.all_ok &= w.s->state_copy_in(w.snapshot, w.s->state_size()) == Status::kOk;
    }
  }
  w.all_ok &= w.s->step(-5, w.logits, w.V) == Status::kTokenRange;  // error paths allocate nothing either
  w.s->reset();
  w.all_ok &= w.s->step(1, nullptr, 0) == Status::kOk;
}

void control(void*) {
  void* volatile p = std::malloc(32);
  std::free(p);
}

// The C API over a loaded file: model and session in memory given here (placed before the window).
struct CSession {
  AlignedBuffer model_mem, session_mem;
  rill_model* model = nullptr;
  rill_session* session = nullptr;
  explicit CSession(const LoadedModel& lm) {
    size_t m_bytes = 0, s_bytes = 0;
    REQUIRE(rill_model_footprint(lm.file().data(), lm.file().size(), &m_bytes, nullptr) == RILL_OK);
    REQUIRE(AlignedBuffer::allocate(m_bytes, &model_mem) == Status::kOk);
    REQUIRE(rill_model_init(lm.file().data(), lm.file().size(), nullptr, model_mem.data(), m_bytes, &model, nullptr) ==
            RILL_OK);
    rill_session_options so = rill_session_default_options();
    so.context_full = RILL_CONTEXT_SLIDE;  // a model with a context limit runs past it
    REQUIRE(rill_session_footprint(model, &so, &s_bytes) == RILL_OK);
    REQUIRE(AlignedBuffer::allocate(s_bytes, &session_mem) == Status::kOk);
    REQUIRE(rill_session_init(model, &so, session_mem.data(), s_bytes, &session, nullptr) == RILL_OK);
  }
};

// device: through Session's device path, on the host emulation of a device backend.
void check_model(const std::string& ckpt, const std::string& dtype = "f32", size_t threads = 1, bool device = false) {
  TempDir tmp;
  const std::string path = tmp.file("m.rill");
  REQUIRE(convert_ckpt(ckpt, path, dtype).empty());
  LoadedModel lm;
  Error e;
  ModelOptions mo;
  if (device) mo.backend = Backend::kCuda;
  REQUIRE_MESSAGE(LoadedModel::open(path.c_str(), mo, &lm, &e) == Status::kOk, e.message);
  ThreadPool* pool = nullptr;
  if (threads > 1) REQUIRE(ThreadPool::create(threads, &pool) == Status::kOk);
  SessionOptions so;
  so.pool = pool;
  so.context_full = ContextFull::kSlide;  // a model with a context limit runs past it (1200 steps)
  OwnedSession os;
  REQUIRE(OwnedSession::create(lm.model(), so, &os) == Status::kOk);
  const size_t V = lm.model().info().vocab_size;
  std::vector<float> logits(V);
  std::vector<Sampler::Candidate> c1(V), c2(V);
  Sampler greedy, sampler;
  SamplerParams gp;
  gp.temperature = 0;
  REQUIRE(greedy.init(gp, c1.data(), V) == Status::kOk);
  SamplerParams sp;  // temperature 0.8, top-k 40, top-p 0.95
  sp.seed = 3;
  REQUIRE(sampler.init(sp, c2.data(), V) == Status::kOk);
  std::vector<int32_t> prompt(64);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7) % V);
  std::vector<unsigned char> snap(os.session().state_size());
  OwnedSession other;
  REQUIRE(OwnedSession::create(lm.model(), so, &other) == Status::kOk);
  BatchOptions bo;
  bo.pool = pool;
  bo.max_streams = 2;
  size_t bytes = 0;
  REQUIRE(Batch::footprint(lm.model(), bo, &bytes) == Status::kOk);
  AlignedBuffer batch_mem;
  REQUIRE(AlignedBuffer::allocate(bytes, &batch_mem) == Status::kOk);
  Batch batch;
  REQUIRE(Batch::init(lm.model(), bo, batch_mem.data(), bytes, &batch) == Status::kOk);
  std::vector<float> batch_logits(2 * V);
  CSession c(lm);  // the C API over the same file
  if (device) {  // a device backend's first kernels may set up what it keeps for later ones (fiber stacks)
    REQUIRE(os.session().prefill(prompt.data(), prompt.size(), logits.data(), V) == Status::kOk);
    Session* ss[] = {&os.session(), &other.session()};
    const int32_t toks[] = {1, 2};
    REQUIRE(batch.step(ss, toks, 2, batch_logits.data(), 2 * V) == Status::kOk);
    REQUIRE(rill_session_step(c.session, 1, logits.data(), V) == RILL_OK);
    REQUIRE(os.session().reset() == Status::kOk);
    REQUIRE(other.session().reset() == Status::kOk);
  }
  Work w{&os.session(), &greedy, &sampler, logits.data(), V, prompt.data(), prompt.size(), snap.data(),
         &batch, &other.session(), batch_logits.data(), c.session};
  const long n = run_window(decode, &w);
  CHECK(w.all_ok);
  CHECK(w.steps_done == 1200);
  CHECK_MESSAGE(n == 0, n << " heap calls during prefill + 1200 steps + sampling + state copies + batch and C API steps");
  ThreadPool::destroy(pool);
}
struct VectorWork {
  Session* s;
  rill_session* cs;
  const float* in;  // [T, din]
  size_t T, din, dout;
  float* out;       // [T, dout]
  unsigned char* snapshot;
  int steps_done = 0;
  bool all_ok = true;
};

void vector_steps(void* p) {
  VectorWork& w = *static_cast<VectorWork*>(p);
  w.all_ok &= w.s->prefill_vectors(w.in, w.T, w.T * w.din, w.out, w.T * w.dout) == Status::kOk;
  for (int i = 0; i < 5000; ++i) {
    const float* x = w.in + (static_cast<size_t>(i) % w.T) * w.din;
    w.all_ok &= w.s->step_vector(x, w.din, w.out, w.dout) == Status::kOk;
    ++w.steps_done;
    if (i % 500 == 0) {
      w.all_ok &= rill_session_step_vector(w.cs, x, w.din, w.out, w.dout) == RILL_OK;
      w.all_ok &= w.s->state_copy_out(w.snapshot, w.s->state_size()) == Status::kOk;
      w.all_ok &= w.s->state_copy_in(w.snapshot, w.s->state_size()) == Status::kOk;
    }
  }
  float bad[64];
  for (size_t c = 0; c < w.din && c < 64; ++c) bad[c] = c == 0 ? std::numeric_limits<float>::quiet_NaN() : 0.f;
  w.all_ok &= w.s->step_vector(bad, w.din, w.out, w.dout) == Status::kNonFinite;  // error paths too
  w.all_ok &= w.s->step_vector(w.in, w.din + 1, w.out, w.dout) == Status::kInvalidArgument;
}

void check_vector_model(const std::string& ckpt) {
  TempDir tmp;
  const std::string path = tmp.file("v.rill");
  REQUIRE(convert_ckpt(ckpt, path, "f32").empty());
  LoadedModel lm;
  Error e;
  REQUIRE_MESSAGE(LoadedModel::open(path.c_str(), ModelOptions{}, &lm, &e) == Status::kOk, e.message);
  OwnedSession os;
  REQUIRE(OwnedSession::create(lm.model(), SessionOptions{}, &os) == Status::kOk);
  const Npy in = read_npy(ckpt + "/inputs.npy");
  const ModelInfo info = lm.model().info();
  REQUIRE(in.shape.size() == 2);
  REQUIRE(in.shape[1] == info.d_input);
  std::vector<float> out(in.shape[0] * info.d_output);
  std::vector<unsigned char> snap(os.session().state_size());
  CSession c(lm);
  VectorWork w{&os.session(), c.session, in.data.data(), in.shape[0], info.d_input, info.d_output, out.data(), snap.data()};
  const long n = run_window(vector_steps, &w);
  CHECK(w.all_ok);
  CHECK(w.steps_done == 5000);
  CHECK_MESSAGE(n == 0, n << " heap calls during vector prefill + 5000 vector steps + state copies + C API steps");
}
}  // namespace

TEST_SUITE("alloc") {
TEST_CASE("no heap call after load: S4D vector model (pooled), vector prefill, steps, errors, C API") {
  check_vector_model(golden_dir("s4d_prenorm_mean"));
}

TEST_CASE("the counting hooks see an allocation (the test can fail)") {
  CHECK(run_window(control, nullptr) == 2);
}

TEST_CASE("no heap call after load: golden model, prefill + 1200 steps + sampling + state copies") {
  check_model(golden_dir("mamba1_awkward"));
}

TEST_CASE("no heap call after load: the device path (recorded steps, staging, batches) on a host emulation") {
  override_backend(Backend::kCuda, host_device_backend());
  check_model(golden_dir("recurrent_gemma_awkward"), "f16", 1, true);
  check_model(golden_dir("mamba2_groups"), "f32", 1, true);
  override_backend(Backend::kCuda, nullptr);
}

#if defined(RILL_ALLOC_CUDA_EMU)
TEST_CASE("no heap call after load: the CUDA backend's device path on the CUDA emulation (graphs, streams, kernels)") {
  override_backend(Backend::kCuda, cuda_emu_backend());
  uint64_t a0, f0, a1, f1;
  cuda_emu_backend()->device->alloc_counts(&a0, &f0);
  check_model(golden_dir("mamba2_groups"), "f32", 1, true);
  cuda_emu_backend()->device->alloc_counts(&a1, &f1);
  CHECK(a1 - a0 == f1 - f0);  // what the model and sessions took on the device, they gave back
  override_backend(Backend::kCuda, nullptr);
}
#endif

TEST_CASE("no heap call after load: Mamba-2 golden model") { check_model(golden_dir("mamba2_groups")); }

TEST_CASE("no heap call after load: RWKV-7 golden model") { check_model(golden_dir("rwkv7_fla_world")); }

TEST_CASE("no heap call after load: RWKV-6 golden model") { check_model(golden_dir("rwkv6_hf_world")); }

TEST_CASE("no heap call after load: Gated DeltaNet golden model") { check_model(golden_dir("gated_deltanet_gva_tied")); }

TEST_CASE("no heap call after load: GLA golden model") { check_model(golden_dir("gla_conv_tied")); }

TEST_CASE("no heap call after load: RetNet golden model") { check_model(golden_dir("retnet_conv_tied")); }

TEST_CASE("no heap call after load: a Mamba-2 hybrid (attention ring of 128 slid past 9 times), q4 with 2 threads") {
  check_model(golden_dir("granite_hybrid_nope"));
  check_model(golden_dir("nemotron_h_bf16"), "q4", 2);
}

TEST_CASE("no heap call after load: RecurrentGemma (ring wrap-around, f16 ring), q8 with a 2-thread pool") {
  check_model(golden_dir("recurrent_gemma_awkward"));            // window 16: 1200 steps wrap it 75 times
  check_model(golden_dir("recurrent_gemma_tied_bf16"), "q8", 2);  // f16 ring, attention heads over 2 threads
}

TEST_CASE("no heap call after load: the bundled demo model, f32, and q8 / q4 with a 2-thread pool") {
  const std::string demo = src_dir() + "/examples/demo_model/checkpoint";
  REQUIRE_MESSAGE(file_exists(demo + "/model.safetensors"), "demo checkpoint missing");
  check_model(demo);
  check_model(demo, "q8", 2);
  check_model(demo, "q4", 2);
}
}  // TEST_SUITE("alloc")
