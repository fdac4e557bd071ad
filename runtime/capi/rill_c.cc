// The C API (rill/rill.h) over the C++ one. Each handle is a small struct placed at the start of the
// caller's memory, followed by what the C++ object needs there; the only heap use is in
// rill_model_open and rill_pool_create (through the extension), as rill.h states.
//
// Every handle begins with a magic value: live while the object is, kDead after release or close. The
// handles of rill_model_open and rill_pool_create are not freed on close but kept on a free list and
// reused, so a closed one can still be read and recognised (its LoadedModel or ThreadPool is freed).
// Nothing here throws: the C++ it calls is built without exceptions, and allocates with nothrow new.
#include "rill/rill.h"

#include <pthread.h>

#include <cstdio>
#include <cstring>
#include <new>

#include "rill/extension.hpp"
#include "rill/rill.hpp"

using namespace rill;

// The status values are the C++ ones.
static_assert(RILL_OK == static_cast<int>(Status::kOk) && RILL_INVALID_ARGUMENT == static_cast<int>(Status::kInvalidArgument) &&
                  RILL_BAD_STATE == static_cast<int>(Status::kBadState) && RILL_BAD_MAGIC == static_cast<int>(Status::kBadMagic) &&
                  RILL_FORMAT_VERSION == static_cast<int>(Status::kVersion) && RILL_MISUSE == static_cast<int>(Status::kMisuse) && RILL_CORRUPT == static_cast<int>(Status::kCorrupt) &&
                  RILL_UNSUPPORTED == static_cast<int>(Status::kUnsupported) &&
                  RILL_TRUNCATED == static_cast<int>(Status::kTruncated) && RILL_IO == static_cast<int>(Status::kIo) &&
                  RILL_ARENA_TOO_SMALL == static_cast<int>(Status::kArenaTooSmall) &&
                  RILL_ALIGNMENT == static_cast<int>(Status::kAlignment) &&
                  RILL_OUT_OF_MEMORY == static_cast<int>(Status::kOutOfMemory) &&
                  RILL_NO_BACKEND == static_cast<int>(Status::kNoBackend) &&
                  RILL_DEVICE_ERROR == static_cast<int>(Status::kDeviceError) &&
                  RILL_TOKEN_RANGE == static_cast<int>(Status::kTokenRange) &&
                  RILL_NON_FINITE == static_cast<int>(Status::kNonFinite) &&
                  RILL_STATE_MISMATCH == static_cast<int>(Status::kStateMismatch) &&
                  RILL_CONTEXT_FULL == static_cast<int>(Status::kContextFull),
              "C and C++ status values agree");
static_assert(RILL_ALIGN == kAlign, "alignment");
static_assert(RILL_ARCH_MAMBA1 == static_cast<int>(Arch::kMamba1) && RILL_ARCH_MAMBA2 == static_cast<int>(Arch::kMamba2) &&
                  RILL_ARCH_RWKV7 == static_cast<int>(Arch::kRwkv7) && RILL_ARCH_S4D == static_cast<int>(Arch::kS4d) &&
                  RILL_ARCH_RECURRENT_GEMMA == static_cast<int>(Arch::kRecurrentGemma) &&
                  RILL_ARCH_MAMBA2_HYBRID == static_cast<int>(Arch::kMamba2Hybrid) &&
                  RILL_ARCH_RWKV6 == static_cast<int>(Arch::kRwkv6) &&
                  RILL_ARCH_GATED_DELTANET == static_cast<int>(Arch::kGatedDeltaNet) &&
                  RILL_ARCH_GLA == static_cast<int>(Arch::kGla) && RILL_ARCH_RETNET == static_cast<int>(Arch::kRetNet),
              "arch values");
static_assert(RILL_TOKENIZER_BYTES == static_cast<int>(TokenizerKind::kBytes) &&
                  RILL_TOKENIZER_WORLD == static_cast<int>(TokenizerKind::kWorld) &&
                  RILL_TOKENIZER_BPE == static_cast<int>(TokenizerKind::kBpe) &&
                  RILL_TOKENIZER_SENTENCEPIECE == static_cast<int>(TokenizerKind::kSentencePiece) &&
                  RILL_TOKENIZER_BPE_BYTE_FALLBACK == static_cast<int>(TokenizerKind::kBpeByteFallback),
              "tokenizer values");
static_assert(RILL_BACKEND_CUDA == static_cast<int>(Backend::kCuda), "backend values");

static_assert(RILL_VERSION == RILL_VERSION_NUMBER, "RILL_VERSION is the header's version number");

namespace {
// Handle magic values ("rillMODL", ...); kDead marks a released or closed handle.
constexpr uint64_t kModelMagic = 0x4c444f4d6c6c6972ull, kSessionMagic = 0x5353454c6c6c6972ull,
                   kBatchMagic = 0x484354426c6c6972ull, kSamplerMagic = 0x504d41536c6c6972ull,
                   kPoolMagic = 0x4c4f4f506c6c6972ull, kDead = 0x444145446c6c6972ull;
}  // namespace

struct rill_model {
  uint64_t magic;
  Model model;
  LoadedModel* owned;     // set by rill_model_open
  rill_model* next_free;  // a closed handle of rill_model_open, on the free list
};
struct rill_session {
  uint64_t magic;
  Session session;
};
struct rill_batch {
  uint64_t magic;
  Batch batch;
  Session** rows;     // [max_streams], the C sessions' C++ objects for one step
  Status* verdicts;   // [max_streams], each stream's status in one step
};
struct rill_sampler {
  uint64_t magic;
  Sampler sampler;
};
struct rill_pool {
  uint64_t magic;
  ThreadPool* pool;
  rill_pool* next_free;
};

namespace {

constexpr size_t handle_bytes(size_t s) { return (s + kAlign - 1) / kAlign * kAlign; }

rill_status code(Status s) { return static_cast<rill_status>(s); }

rill_status report(rill_error* out, const Error& e) {
  if (out) {
    out->status = code(e.status);
    std::memcpy(out->message, e.message, sizeof out->message);
    out->message[sizeof out->message - 1] = '\0';
  }
  return code(e.status);
}

rill_status report(rill_error* out, Status s, const char* msg) {
  Error e;
  e.status = s;
  std::strncpy(e.message, msg, sizeof e.message - 1);
  return report(out, e);
}

bool aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % kAlign == 0; }

// Memory for a handle of h bytes followed by the C++ object's own: non-null, aligned, at least h
// bytes (the object's init checks the rest). RILL_OK, or the status reported into err.
rill_status check_handle_memory(const void* mem, size_t size, size_t h, const char* what, rill_error* err) {
  char msg[96];
  if (!mem || !aligned(mem)) {
    std::snprintf(msg, sizeof msg, "%s must be non-null and 64-byte aligned", what);
    return report(err, Status::kAlignment, msg);
  }
  if (size < h) {
    std::snprintf(msg, sizeof msg, "%s is smaller than its footprint", what);
    return report(err, Status::kArenaTooSmall, msg);
  }
  return RILL_OK;
}

// Zeroes the caller's struct_size bytes (fields this library does not know read as zero, which
// means "as before" for every field added later), then writes the defaults of the fields that fit.
template <class T>
bool init_opts(T* o, size_t size) {
  if (!o || size < sizeof(uint32_t) || size > RILL_STRUCT_SIZE_MAX) return false;
  std::memset(o, 0, size);
  o->struct_size = static_cast<uint32_t>(size);
  return true;
}
#define RILL_FITS(o, field) (offsetof(std::remove_pointer_t<decltype(o)>, field) + sizeof((o)->field) <= (o)->struct_size)

// The caller's options, as this library's struct: fields the caller's (older) struct lacks keep
// their defaults; fields past ours (a newer caller) must be zero, or kUnsupported.
template <class T>
Status take_opts(const T* in, void (*defaults)(T*, size_t), T* out) {
  defaults(out, sizeof(T));
  if (!in) return Status::kOk;
  const size_t n = in->struct_size;
  if (n < sizeof(uint32_t) || n > RILL_STRUCT_SIZE_MAX) return Status::kInvalidArgument;
  std::memcpy(out, in, n < sizeof(T) ? n : sizeof(T));
  const unsigned char* b = reinterpret_cast<const unsigned char*>(in);
  for (size_t i = sizeof(T); i < n; ++i)
    if (b[i]) return Status::kUnsupported;
  out->struct_size = sizeof(T);
  return Status::kOk;
}

Status model_opts(const rill_model_options* in, ModelOptions* out) {
  rill_model_options o;
  const Status s = take_opts(in, rill_model_options_init, &o);
  if (s != Status::kOk) return s;
  if (o.backend != RILL_BACKEND_CPU && o.backend != RILL_BACKEND_CUDA) return Status::kInvalidArgument;
  out->backend = static_cast<Backend>(o.backend);
  out->device = o.device;
  out->verify = o.verify != 0;
  out->prefault = o.prefault != 0;
  out->lock_memory = o.lock_memory != 0;
  out->max_context = o.max_context;
  return Status::kOk;
}

// A pool option: null (no pool) or a live pool; kMisuse for a destroyed one.
Status pool_of(rill_pool* p, const ParallelFor** out) {
  *out = nullptr;
  if (!p) return Status::kOk;
  if (p->magic != kPoolMagic) return Status::kMisuse;
  *out = p->pool;
  return Status::kOk;
}

Status session_opts(const rill_session_options* in, SessionOptions* out) {
  rill_session_options o;
  const Status s = take_opts(in, rill_session_options_init, &o);
  if (s != Status::kOk) return s;
  out->prefill_chunk = o.prefill_chunk;
  out->prefault = o.prefault != 0;
  out->lock_memory = o.lock_memory != 0;
  if (o.context_full != RILL_CONTEXT_REFUSE && o.context_full != RILL_CONTEXT_SLIDE) return Status::kInvalidArgument;
  out->context_full = static_cast<ContextFull>(o.context_full);
  out->chunked_prefill = o.chunked_prefill != 0;
  return pool_of(o.pool, &out->pool);
}

Status batch_opts(const rill_batch_options* in, BatchOptions* out) {
  rill_batch_options o;
  const Status s = take_opts(in, rill_batch_options_init, &o);
  if (s != Status::kOk) return s;
  out->max_streams = o.max_streams;
  return pool_of(o.pool, &out->pool);
}

size_t batch_handle_bytes(size_t max_streams) {
  return handle_bytes(sizeof(rill_batch)) + handle_bytes(max_streams * sizeof(Session*)) +
         handle_bytes(max_streams * sizeof(Status));
}

// RILL_OK for a live handle; RILL_INVALID_ARGUMENT for null; RILL_MISUSE for a released or closed
// one, or memory that never held one.
template <class H>
rill_status check_handle(const H* h, uint64_t magic) {
  if (!h) return RILL_INVALID_ARGUMENT;
  return h->magic == magic ? RILL_OK : RILL_MISUSE;
}
rill_status check(const rill_model* m) { return check_handle(m, kModelMagic); }
rill_status check(const rill_session* s) { return check_handle(s, kSessionMagic); }
rill_status check(const rill_batch* b) { return check_handle(b, kBatchMagic); }
rill_status check(const rill_sampler* s) { return check_handle(s, kSamplerMagic); }
rill_status check(const rill_pool* p) { return check_handle(p, kPoolMagic); }

rill_status report_handle(rill_error* err, rill_status c, const char* what) {
  char msg[96];
  std::snprintf(msg, sizeof msg, "%s is %s", what,
                c == RILL_INVALID_ARGUMENT ? "null" : "released, closed or never initialised");
  return report(err, static_cast<Status>(c), msg);
}

// The handles rill_model_open and rill_pool_create hand out: taken from a free list of closed ones, or
// allocated; never freed, so a closed handle stays readable. Only open/create and close/destroy lock.
pthread_mutex_t g_handles_mu = PTHREAD_MUTEX_INITIALIZER;
struct HandlesLock {
  HandlesLock() { pthread_mutex_lock(&g_handles_mu); }
  ~HandlesLock() { pthread_mutex_unlock(&g_handles_mu); }
};
rill_model* g_free_models = nullptr;
rill_pool* g_free_pools = nullptr;

template <class H>
H* take_handle(H** free_list) {
  HandlesLock lock;
  if (H* h = *free_list) {
    *free_list = h->next_free;
    return h;
  }
  return new (std::nothrow) H{};
}
template <class H>
void give_back_handle(H* h, H** free_list) {
  HandlesLock lock;
  h->next_free = *free_list;
  *free_list = h;
}

}  // namespace

extern "C" {

int32_t rill_version(void) { return RILL_VERSION_NUMBER; }
const char* rill_version_string(void) { return version_string(); }
const char* rill_status_str(rill_status s) { return status_str(static_cast<Status>(s)); }

// ---- options

void rill_model_options_init(rill_model_options* o, size_t size) {
  if (!init_opts(o, size)) return;
  if (RILL_FITS(o, backend)) o->backend = RILL_BACKEND_CPU;
  if (RILL_FITS(o, device)) o->device = 0;
  if (RILL_FITS(o, verify)) o->verify = 1;
}

void rill_session_options_init(rill_session_options* o, size_t size) {
  if (!init_opts(o, size)) return;
  const SessionOptions d;
  if (RILL_FITS(o, prefill_chunk)) o->prefill_chunk = d.prefill_chunk;
}

void rill_batch_options_init(rill_batch_options* o, size_t size) {
  if (!init_opts(o, size)) return;
  const BatchOptions d;
  if (RILL_FITS(o, max_streams)) o->max_streams = d.max_streams;
}

void rill_pool_options_init(rill_pool_options* o, size_t size) {
  if (!init_opts(o, size)) return;
  const PoolOptions d;
  if (RILL_FITS(o, threads)) o->threads = static_cast<uint32_t>(d.threads);
  if (RILL_FITS(o, cpu_mask)) o->cpu_mask = d.cpu_mask;
  if (RILL_FITS(o, sched_policy)) o->sched_policy = d.sched_policy;
  if (RILL_FITS(o, sched_priority)) o->sched_priority = d.sched_priority;
}

void rill_sampler_options_init(rill_sampler_options* o, size_t size) {
  if (!init_opts(o, size)) return;
  const SamplerParams d;
  if (RILL_FITS(o, temperature)) o->temperature = d.temperature;
  if (RILL_FITS(o, top_k)) o->top_k = d.top_k;
  if (RILL_FITS(o, top_p)) o->top_p = d.top_p;
  if (RILL_FITS(o, seed)) o->seed = d.seed;
}

// ---- model

rill_status rill_model_footprint(const void* data, size_t size, size_t* bytes, rill_error* err) {
  if (!bytes) return report(err, Status::kInvalidArgument, "bytes is null");
  Error e;
  size_t b = 0;
  if (Model::footprint(data, size, &b, &e) != Status::kOk) return report(err, e);
  *bytes = handle_bytes(sizeof(rill_model)) + b;
  return RILL_OK;
}

rill_status rill_model_init(const void* data, size_t size, const rill_model_options* opts, void* mem,
                            size_t mem_size, rill_model** out, rill_error* err) {
  if (!out) return report(err, Status::kInvalidArgument, "out is null");
  *out = nullptr;
  ModelOptions mo;
  const Status so = model_opts(opts, &mo);
  if (so != Status::kOk) return report(err, so, "model options: bad struct_size, backend, or unknown fields set");
  const size_t h = handle_bytes(sizeof(rill_model));
  if (const rill_status c = check_handle_memory(mem, mem_size, h, "model memory", err)) return c;
  auto* m = new (mem) rill_model{0, Model{}, nullptr, nullptr};
  Error e;
  if (Model::init(data, size, mo, static_cast<unsigned char*>(mem) + h, mem_size - h, &m->model, &e) != Status::kOk)
    return report(err, e);
  m->magic = kModelMagic;
  *out = m;
  return RILL_OK;
}

rill_status rill_model_open(const char* path, const rill_model_options* opts, rill_model** out, rill_error* err) {
  if (!out || !path) return report(err, Status::kInvalidArgument, "path or out is null");
  *out = nullptr;
  ModelOptions mo;
  const Status so = model_opts(opts, &mo);
  if (so != Status::kOk) return report(err, so, "model options: bad struct_size, backend, or unknown fields set");
  auto* lm = new (std::nothrow) LoadedModel;
  if (!lm) return report(err, Status::kOutOfMemory, "cannot allocate a model");
  Error e;
  if (LoadedModel::open(path, mo, lm, &e) != Status::kOk) {
    delete lm;
    return report(err, e);
  }
  rill_model* m = take_handle(&g_free_models);
  if (!m) {
    delete lm;
    return report(err, Status::kOutOfMemory, "cannot allocate a model handle");
  }
  m->model = lm->model();
  m->owned = lm;
  m->next_free = nullptr;
  m->magic = kModelMagic;
  *out = m;
  return RILL_OK;
}

rill_status rill_model_release(rill_model* m) {
  if (!m) return RILL_OK;
  if (const rill_status c = check(m)) return c;
  if (m->owned) return RILL_MISUSE;  // opened: rill_model_close
  m->model.release();
  m->magic = kDead;
  return RILL_OK;
}

rill_status rill_model_close(rill_model* m) {
  if (!m) return RILL_OK;
  if (const rill_status c = check(m)) return c;
  if (!m->owned) return RILL_MISUSE;  // in caller memory: rill_model_release
  m->magic = kDead;
  delete m->owned;
  m->owned = nullptr;
  m->model = Model{};
  give_back_handle(m, &g_free_models);
  return RILL_OK;
}

rill_status rill_model_get_info(const rill_model* m, rill_model_info* info) {
  if (const rill_status c = check(m)) return c;
  if (!info || info->struct_size < sizeof(uint32_t) || info->struct_size > RILL_STRUCT_SIZE_MAX)
    return RILL_INVALID_ARGUMENT;
  const ModelInfo in = m->model.info();
  rill_model_info o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.arch = static_cast<int32_t>(in.arch);
  o.d_model = in.d_model;
  o.n_layer = in.n_layer;
  o.vocab_size = in.vocab_size;
  o.tokenizer = static_cast<int32_t>(in.tokenizer);
  o.bos_id = in.bos_id;
  o.eos_id = in.eos_id;
  o.weight_bytes = in.weight_bytes;
  o.state_bytes = in.state_bytes;
  o.file_bytes = in.file_bytes;
  o.arch_name = arch_name(in.arch);
  o.backend = in.backend;
  o.d_input = in.d_input;
  o.d_output = in.d_output;
  o.max_context = in.max_context;
  const size_t caller = info->struct_size, n = caller < sizeof o ? caller : sizeof o;
  std::memcpy(info, &o, n);
  if (caller > n) std::memset(reinterpret_cast<unsigned char*>(info) + n, 0, caller - n);  // a newer header's fields
  info->struct_size = static_cast<uint32_t>(n);  // what this library filled
  return RILL_OK;
}

rill_status rill_model_verify_data(const rill_model* m, rill_error* err) {
  if (const rill_status c = check(m)) return report_handle(err, c, "model");
  Error e;
  if (m->model.verify_data(&e) != Status::kOk) return report(err, e);
  return RILL_OK;
}

// ---- pool

rill_status rill_pool_create(size_t threads, rill_pool** out) {
  rill_pool_options o = rill_pool_default_options();
  if (threads > UINT32_MAX) return RILL_INVALID_ARGUMENT;
  o.threads = static_cast<uint32_t>(threads);
  return rill_pool_create_with(&o, out, nullptr);
}

rill_status rill_pool_create_with(const rill_pool_options* opts, rill_pool** out, rill_error* err) {
  if (!out) return report(err, Status::kInvalidArgument, "out is null");
  *out = nullptr;
  rill_pool_options o;
  if (const Status s = take_opts(opts, rill_pool_options_init, &o); s != Status::kOk)
    return report(err, s, "pool options: bad struct_size, or unknown fields set");
  PoolOptions po;
  po.threads = o.threads;
  po.cpu_mask = o.cpu_mask;
  po.sched_policy = o.sched_policy;
  po.sched_priority = o.sched_priority;
  ThreadPool* tp = nullptr;
  Error e;
  if (ThreadPool::create(po, &tp, &e) != Status::kOk) return report(err, e);
  rill_pool* p = take_handle(&g_free_pools);
  if (!p) {
    ThreadPool::destroy(tp);
    return report(err, Status::kOutOfMemory, "cannot allocate a pool handle");
  }
  p->pool = tp;
  p->next_free = nullptr;
  p->magic = kPoolMagic;
  *out = p;
  return RILL_OK;
}

rill_status rill_pool_destroy(rill_pool* p) {
  if (!p) return RILL_OK;
  if (const rill_status c = check(p)) return c;
  p->magic = kDead;
  ThreadPool::destroy(p->pool);
  p->pool = nullptr;
  give_back_handle(p, &g_free_pools);
  return RILL_OK;
}

// ---- session

rill_status rill_session_footprint(const rill_model* m, const rill_session_options* opts, size_t* bytes) {
  if (const rill_status c = check(m)) return c;
  if (!bytes) return RILL_INVALID_ARGUMENT;
  SessionOptions so;
  Status s = session_opts(opts, &so);
  if (s != Status::kOk) return code(s);
  size_t b = 0;
  if ((s = Session::footprint(m->model, so, &b)) != Status::kOk) return code(s);
  *bytes = handle_bytes(sizeof(rill_session)) + b;
  return RILL_OK;
}

rill_status rill_session_init(const rill_model* m, const rill_session_options* opts, void* arena,
                              size_t arena_size, rill_session** out, rill_error* err) {
  if (!out) return report(err, Status::kInvalidArgument, "out is null");
  *out = nullptr;
  if (const rill_status c = check(m)) return report_handle(err, c, "model");
  SessionOptions so;
  const Status s = session_opts(opts, &so);
  if (s != Status::kOk)
    return report(err, s, s == Status::kMisuse ? "session options: the pool was destroyed"
                                                : "session options: bad struct_size, or unknown fields set");
  const size_t h = handle_bytes(sizeof(rill_session));
  if (const rill_status c = check_handle_memory(arena, arena_size, h, "session arena", err)) return c;
  auto* r = new (arena) rill_session{};
  Error e;
  if (Session::init(m->model, so, static_cast<unsigned char*>(arena) + h, arena_size - h, &r->session, &e) !=
      Status::kOk)
    return report(err, e);
  r->magic = kSessionMagic;
  *out = r;
  return RILL_OK;
}

rill_status rill_session_release(rill_session* s) {
  if (!s) return RILL_OK;
  if (const rill_status c = check(s)) return c;
  s->magic = kDead;
  s->session = Session{};  // the move frees what the old session held
  return RILL_OK;
}

rill_status rill_session_clone(const rill_session* src, void* arena, size_t arena_size, rill_session** out,
                               rill_error* err) {
  if (!out) return report(err, Status::kInvalidArgument, "out is null");
  *out = nullptr;
  if (const rill_status c = check(src)) return report_handle(err, c, "session");
  const size_t h = handle_bytes(sizeof(rill_session));
  if (const rill_status c = check_handle_memory(arena, arena_size, h, "session arena", err)) return c;
  if (arena == static_cast<const void*>(src)) return report(err, Status::kInvalidArgument, "clone into its own arena");
  auto* r = new (arena) rill_session{};
  Error e;
  if (src->session.clone(static_cast<unsigned char*>(arena) + h, arena_size - h, &r->session, &e) != Status::kOk)
    return report(err, e);
  r->magic = kSessionMagic;
  *out = r;
  return RILL_OK;
}

rill_status rill_session_step(rill_session* s, int32_t token, float* logits, size_t n_logits) {
  if (const rill_status c = check(s)) return c;
  return code(s->session.step(token, logits, n_logits));
}

rill_status rill_session_prefill(rill_session* s, const int32_t* tokens, size_t n_tokens, float* logits,
                                 size_t n_logits) {
  if (const rill_status c = check(s)) return c;
  return code(s->session.prefill(tokens, n_tokens, logits, n_logits));
}

rill_status rill_session_step_vector(rill_session* s, const float* input, size_t n_input, float* output,
                                     size_t n_output) {
  if (const rill_status c = check(s)) return c;
  return code(s->session.step_vector(input, n_input, output, n_output));
}

rill_status rill_session_prefill_vectors(rill_session* s, const float* inputs, size_t n_steps, size_t n_input,
                                         float* output, size_t n_output) {
  if (const rill_status c = check(s)) return c;
  return code(s->session.prefill_vectors(inputs, n_steps, n_input, output, n_output));
}

rill_status rill_session_reset(rill_session* s) {
  if (const rill_status c = check(s)) return c;
  return code(s->session.reset());
}

size_t rill_session_state_size(const rill_session* s) { return check(s) == RILL_OK ? s->session.state_size() : 0; }

rill_status rill_session_state_copy_out(const rill_session* s, void* dst, size_t size) {
  if (const rill_status c = check(s)) return c;
  return code(s->session.state_copy_out(dst, size));
}

rill_status rill_session_state_copy_in(rill_session* s, const void* src, size_t size) {
  if (const rill_status c = check(s)) return c;
  return code(s->session.state_copy_in(src, size));
}

// ---- batch

rill_status rill_batch_footprint(const rill_model* m, const rill_batch_options* opts, size_t* bytes) {
  if (const rill_status c = check(m)) return c;
  if (!bytes) return RILL_INVALID_ARGUMENT;
  BatchOptions bo;
  Status s = batch_opts(opts, &bo);
  if (s != Status::kOk) return code(s);
  size_t b = 0;
  if ((s = Batch::footprint(m->model, bo, &b)) != Status::kOk) return code(s);
  *bytes = batch_handle_bytes(bo.max_streams) + b;
  return RILL_OK;
}

rill_status rill_batch_init(const rill_model* m, const rill_batch_options* opts, void* arena, size_t arena_size,
                            rill_batch** out, rill_error* err) {
  if (!out) return report(err, Status::kInvalidArgument, "out is null");
  *out = nullptr;
  if (const rill_status c = check(m)) return report_handle(err, c, "model");
  BatchOptions bo;
  const Status s = batch_opts(opts, &bo);
  if (s != Status::kOk)
    return report(err, s, s == Status::kMisuse ? "batch options: the pool was destroyed"
                                                : "batch options: bad struct_size, or unknown fields set");
  if (bo.max_streams < 1 || bo.max_streams > 4096)
    return report(err, Status::kInvalidArgument, "max_streams is outside [1, 4096]");
  const size_t h = batch_handle_bytes(bo.max_streams);
  if (const rill_status c = check_handle_memory(arena, arena_size, h, "batch arena", err)) return c;
  unsigned char* base = static_cast<unsigned char*>(arena);
  auto* r = new (arena) rill_batch{};
  r->rows = reinterpret_cast<Session**>(base + handle_bytes(sizeof(rill_batch)));
  r->verdicts = reinterpret_cast<Status*>(base + handle_bytes(sizeof(rill_batch)) +
                                          handle_bytes(bo.max_streams * sizeof(Session*)));
  Error e;
  if (Batch::init(m->model, bo, base + h, arena_size - h, &r->batch, &e) != Status::kOk) return report(err, e);
  r->magic = kBatchMagic;
  *out = r;
  return RILL_OK;
}

rill_status rill_batch_release(rill_batch* b) {
  if (!b) return RILL_OK;
  if (const rill_status c = check(b)) return c;
  b->magic = kDead;
  b->batch = Batch{};
  return RILL_OK;
}

}  // extern "C"

namespace {
// A batch step through the C handles: the sessions' C++ objects into the batch's rows, each stream's
// verdict out through the batch's own array (Status and rill_status are distinct types).
template <class Step>
rill_status batch_run(rill_batch* b, rill_session* const* sessions, size_t n, rill_status* stream_status,
                      int32_t on_bad, Step step) {
  if (const rill_status c = check(b)) return c;
  if (!sessions || n < 1 || n > b->batch.max_streams()) return RILL_INVALID_ARGUMENT;
  if (on_bad != RILL_BAD_STREAM_REFUSE_ALL && on_bad != RILL_BAD_STREAM_SKIP) return RILL_INVALID_ARGUMENT;
  if (on_bad == RILL_BAD_STREAM_SKIP && !stream_status) return RILL_INVALID_ARGUMENT;
  for (size_t i = 0; i < n; ++i) {  // a null session is refused as a stream; a dead one is misuse
    if (sessions[i] && check(sessions[i]) != RILL_OK) return RILL_MISUSE;
    b->rows[i] = sessions[i] ? &sessions[i]->session : nullptr;
  }
  constexpr Status kUnchecked = static_cast<Status>(-1);
  b->verdicts[0] = kUnchecked;
  const Status s = step(b->rows, stream_status ? b->verdicts : nullptr, static_cast<BadStream>(on_bad));
  if (stream_status && b->verdicts[0] != kUnchecked)  // the call's arguments were good: every stream checked
    for (size_t i = 0; i < n; ++i) stream_status[i] = code(b->verdicts[i]);
  return code(s);
}
}  // namespace

extern "C" {

rill_status rill_batch_step(rill_batch* b, rill_session* const* sessions, const int32_t* tokens, size_t n,
                            float* logits, size_t n_logits) {
  return rill_batch_step_streams(b, sessions, tokens, n, logits, n_logits, nullptr, RILL_BAD_STREAM_REFUSE_ALL);
}

rill_status rill_batch_step_streams(rill_batch* b, rill_session* const* sessions, const int32_t* tokens, size_t n,
                                    float* logits, size_t n_logits, rill_status* stream_status, int32_t on_bad) {
  return batch_run(b, sessions, n, stream_status, on_bad, [&](Session* const* rows, Status* v, BadStream mode) {
    return b->batch.step(rows, tokens, n, logits, n_logits, v, mode);
  });
}

rill_status rill_batch_step_vectors(rill_batch* b, rill_session* const* sessions, const float* inputs, size_t n,
                                    size_t n_input, float* outputs, size_t n_output, rill_status* stream_status,
                                    int32_t on_bad) {
  return batch_run(b, sessions, n, stream_status, on_bad, [&](Session* const* rows, Status* v, BadStream mode) {
    return b->batch.step_vectors(rows, inputs, n, n_input, outputs, n_output, v, mode);
  });
}

// ---- text

rill_status rill_tokenize(const rill_model* m, const char* text, size_t len, int32_t* out, size_t cap,
                          size_t* n_out) {
  if (const rill_status c = check(m)) return c;
  return code(tokenize(m->model, text, len, out, cap, n_out));
}

rill_status rill_detokenize(const rill_model* m, int32_t token, char* out, size_t cap, size_t* n_out) {
  if (const rill_status c = check(m)) return c;
  return code(detokenize(m->model, token, out, cap, n_out));
}

// ---- sampling

size_t rill_sampler_footprint(size_t vocab) {
  return handle_bytes(sizeof(rill_sampler)) + Sampler::scratch_count(vocab) * sizeof(Sampler::Candidate);
}

rill_status rill_sampler_init(const rill_sampler_options* opts, size_t vocab, void* mem, size_t mem_size,
                              rill_sampler** out) {
  if (!out) return RILL_INVALID_ARGUMENT;
  *out = nullptr;
  rill_sampler_options o;
  const Status s = take_opts(opts, rill_sampler_options_init, &o);
  if (s != Status::kOk) return code(s);
  if (!mem || !aligned(mem)) return RILL_ALIGNMENT;
  if (vocab > (SIZE_MAX - kAlign) / sizeof(Sampler::Candidate) || mem_size < rill_sampler_footprint(vocab))
    return RILL_ARENA_TOO_SMALL;
  SamplerParams p;
  p.temperature = o.temperature;
  p.top_k = o.top_k;
  p.top_p = o.top_p;
  p.seed = o.seed;
  auto* r = new (mem) rill_sampler{};
  auto* cand = reinterpret_cast<Sampler::Candidate*>(static_cast<unsigned char*>(mem) + handle_bytes(sizeof(rill_sampler)));
  const Status si = r->sampler.init(p, cand, Sampler::scratch_count(vocab));
  if (si != Status::kOk) return code(si);
  r->magic = kSamplerMagic;
  *out = r;
  return RILL_OK;
}

int32_t rill_sampler_sample(rill_sampler* s, const float* logits, size_t n, size_t n_valid) {
  if (check(s) != RILL_OK || !logits) return -1;
  return s->sampler.sample(logits, n, n_valid);
}

rill_status rill_sampler_reseed(rill_sampler* s, uint64_t seed) {
  if (const rill_status c = check(s)) return c;
  s->sampler.reseed(seed);
  return RILL_OK;
}

rill_status rill_sampler_release(rill_sampler* s) {
  if (!s) return RILL_OK;
  if (const rill_status c = check(s)) return c;
  s->magic = kDead;
  return RILL_OK;
}

}  // extern "C"
