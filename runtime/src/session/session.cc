// Session: a stream's persistent state and scratch, placed in caller memory. The step path below
// checks only caller input and never allocates, throws or does I/O; it waits on nothing but the
// pool's threads computing its own products (rill.hpp, ParallelFor), or on a device backend, the
// device finishing this pass's own work.
//
// Where a pass's regions live: on the CPU, in the caller's arena. On a device backend (DeviceHooks),
// the caller's arena holds only the DevicePass; the regions are in a device arena it opens at init,
// inputs and outputs go through its pinned staging (io), and a decode step is replayed from the
// forward pass recorded at init (a CUDA graph: copy-in, every op, copy-out).
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <new>

#include "arch/arch.h"
#include "backend/backend.h"
#include "core/hash.h"

namespace rill {

namespace {
constexpr uint32_t kMaxPrefillChunk = 4096;

// The arena layout of a session (with_state) or of a batch: where each region of the pass's memory
// lies (offsets, kAlign-aligned), for forward passes of up to `rows` rows. A device backend adds a
// region for the outputs and a pinned staging area (io) for inputs and outputs.
struct ArenaLayout {
  size_t rows, state, tokens, inputs, states, scratch, work, out, total;
  size_t io_tokens, io_states, io_inputs, io_out, io_total;  // device backends
};

ArenaLayout layout_arena(const ModelImpl& m, size_t rows, bool with_state, bool chunked = false) {
  ArenaLayout p{};
  size_t off = 0;
  auto region = [&off](size_t bytes) {
    const size_t at = off;
    off += align_up(bytes, kAlign);
    return at;
  };
  const bool dev = device_hooks(m.backend) != nullptr;
  const size_t out_bytes = rows * m.d_output * sizeof(float);
  p.rows = rows;
  p.state = region(with_state ? m.state_bytes : 0);
  p.tokens = region(rows * sizeof(int32_t));
  p.inputs = region(rows * m.d_input * sizeof(float));
  p.states = region(rows * sizeof(unsigned char*));
  p.scratch = region(find_arch(m.arch)->scratch_bytes(m, rows, chunked));
  p.work = region(m.backend->work_bytes(m.backend, rows, m.max_cols));
  p.out = region(dev ? out_bytes : 0);
  p.total = off;
  if (dev) {
    off = 0;
    p.io_tokens = region(rows * sizeof(int32_t));
    p.io_states = region(rows * sizeof(unsigned char*));
    p.io_inputs = region(rows * m.d_input * sizeof(float));
    p.io_out = region(out_bytes);
    p.io_total = off;
  }
  return p;
}

// Caller arena bytes: the regions themselves, or on a device backend only the DevicePass.
size_t host_bytes(const ModelImpl& m, const ArenaLayout& p) {
  return device_hooks(m.backend) ? align_up(sizeof(DevicePass), kAlign) : p.total;
}

bool rows_ok(uint32_t rows) { return rows >= 1 && rows <= kMaxPrefillChunk; }

DevicePass* device_pass(const PassSlots& p) { return static_cast<DevicePass*>(p.device); }

// Checks `arena` against layout p and places a pass's slots in it (Session::init, Batch::init); a device
// backend's in a device arena opened here. *base: where the regions start.
Status place_pass(const ModelImpl& m, const ParallelFor* pool, const ArenaLayout& p, const char* what, void* arena,
                  size_t arena_size, PassSlots* out, unsigned char** base_out, Error* err) {
  if (!arena || reinterpret_cast<uintptr_t>(arena) % kAlign != 0)
    return fail(err, Status::kAlignment, "%s arena must be non-null and %zu-byte aligned", what, kAlign);
  const size_t need = host_bytes(m, p);
  if (arena_size < need)
    return fail(err, Status::kArenaTooSmall, "%s arena is %zu bytes, %zu needed", what, arena_size, need);
  unsigned char* base = static_cast<unsigned char*>(arena);  // the CPU backend's memory is the host's
  DevicePass* dp = nullptr;
  if (const DeviceHooks* dev = device_hooks(m.backend)) {
    dp = new (arena) DevicePass();
    dp->backend = m.backend;
    const Status s = dev->open(m.device, p.total, p.io_total, dp, err);
    if (s != Status::kOk) return s;
    base = dp->arena;
    dp->io_tokens = reinterpret_cast<int32_t*>(dp->io + p.io_tokens);
    dp->io_states = reinterpret_cast<unsigned char**>(dp->io + p.io_states);
    dp->io_inputs = reinterpret_cast<float*>(dp->io + p.io_inputs);
    dp->io_out = reinterpret_cast<float*>(dp->io + p.io_out);
  }
  *out = PassSlots{&m,
                   pool,
                   static_cast<uint32_t>(p.rows),
                   reinterpret_cast<int32_t*>(base + p.tokens),
                   reinterpret_cast<float*>(base + p.inputs),
                   reinterpret_cast<unsigned char**>(base + p.states),
                   base + p.scratch,
                   base + p.work,
                   dp,
                   dp ? reinterpret_cast<float*>(base + p.out) : nullptr};
  *base_out = base;
  return Status::kOk;
}

// The first n rows of the slots through the model; outputs (logits or vectors) of the last n_out rows.
void run_pass(const PassSlots& p, size_t n, float* out, size_t n_out) {
  const ModelImpl& m = *p.impl;
  const DevicePass* dp = device_pass(p);
  const Exec x{m.backend, p.pool, dp ? dp->stream : nullptr, p.scratch, p.work, p.chunked_prefill};
  find_arch(m.arch)->forward(x, m, Rows{n, p.tokens, p.inputs, p.states, out, out ? n_out : 0u});
}

// Device backends: queues one pass of n rows whose inputs are in the staging area (ids or vectors),
// and the outputs of its last n_out rows back into it (none if n_out is 0). What a recorded decode step
// replays.
void queue_pass(const PassSlots& p, size_t n, size_t n_out) {
  const ModelImpl& m = *p.impl;
  const DevicePass& d = *device_pass(p);
  const DeviceHooks& h = *m.backend->device;
  if (m.d_input) h.to_device(d, p.inputs, d.io_inputs, n * m.d_input * sizeof(float));
  else h.to_device(d, p.tokens, d.io_tokens, n * sizeof(int32_t));
  run_pass(p, n, n_out ? p.out : nullptr, n_out);
  if (n_out) h.to_host(d, d.io_out, p.out, n_out * m.d_output * sizeof(float));
}

struct QueueArgs {
  PassSlots p;  // by value: fixed at init, whatever becomes of the Session object
  size_t n, n_out;
};
static_assert(sizeof(QueueArgs) <= kMaxRecordArg, "a recorded pass's arguments fit");
void queue_recorded(const void* arg) {
  const QueueArgs& a = *static_cast<const QueueArgs*>(arg);
  queue_pass(a.p, a.n, a.n_out);
}

// Recorded decode steps: key 0 writes the outputs, key 1 skips the head.
constexpr uint32_t kStepOut = 0, kStepNoOut = 1;

// Device backends: n rows staged in io through the model, the outputs of the last n_out rows copied to
// `out` (if not null). A single row replays a recorded step where there is one. kDeviceError if the
// device failed; the outputs are then not written.
Status device_pass_run(const PassSlots& p, size_t n, float* out, size_t n_out) {
  const ModelImpl& m = *p.impl;
  const DevicePass& d = *device_pass(p);
  const DeviceHooks& h = *m.backend->device;
  const size_t rows_out = out ? n_out : 0;
  if (!(n == 1 && h.replay(d, rows_out ? kStepOut : kStepNoOut))) queue_pass(p, n, rows_out);
  const Status s = h.sync(d);
  if (s == Status::kOk && out) std::memcpy(out, d.io_out, rows_out * m.d_output * sizeof(float));
  return s;
}

// Frees what a pass holds outside the caller's arena (a device backend's), leaving it empty.
void release_pass(PassSlots* p) {
  if (DevicePass* d = device_pass(*p)) {
    d->backend->device->close(d);
    d->~DevicePass();
  }
  *p = PassSlots{};
}

// Moves a handle's slots, leaving the source empty (one handle per arena).
void take_pass(PassSlots* to, PassSlots* from) {
  if (to == from) return;
  release_pass(to);
  *to = *from;
  *from = PassSlots{};
}
}  // namespace

Status Session::footprint(const Model& model, const SessionOptions& opts, size_t* bytes) {
  if (!model.ok() || !bytes) return Status::kInvalidArgument;
  if (!rows_ok(opts.prefill_chunk)) return Status::kInvalidArgument;
  *bytes = host_bytes(*model.impl(), layout_arena(*model.impl(), opts.prefill_chunk, true, opts.chunked_prefill));
  return Status::kOk;
}

Status Session::device_footprint(const Model& model, const SessionOptions& opts, size_t* bytes) {
  if (!model.ok() || !bytes) return Status::kInvalidArgument;
  if (!rows_ok(opts.prefill_chunk)) return Status::kInvalidArgument;
  const ModelImpl& m = *model.impl();
  *bytes = device_hooks(m.backend) ? layout_arena(m, opts.prefill_chunk, true, opts.chunked_prefill).total : 0;
  return Status::kOk;
}

Status Session::init(const Model& model, const SessionOptions& opts, void* arena, size_t arena_size, Session* out,
                     Error* err) {
  if (!out) return fail(err, Status::kInvalidArgument, "out is null");
  *out = Session{};
  if (!model.ok()) return fail(err, Status::kBadState, "model is not initialised");
  const ModelImpl& m = *model.impl();
  if (!rows_ok(opts.prefill_chunk))
    return fail(err, Status::kInvalidArgument, "prefill_chunk %u is outside [1, %u]", opts.prefill_chunk,
                kMaxPrefillChunk);
  const ArenaLayout p = layout_arena(m, opts.prefill_chunk, true, opts.chunked_prefill);
  const bool fits = arena && arena_size >= host_bytes(m, p);
  if ((opts.prefault || opts.lock_memory) && fits) {
    std::memset(arena, 0, host_bytes(m, p));  // every page written now, not at the first steps
    if (opts.lock_memory) {
      const Status ls = lock_pages(arena, host_bytes(m, p), "the session arena", err);
      if (ls != Status::kOk) return ls;
    }
  }
  unsigned char* base = nullptr;
  Status s = place_pass(m, opts.pool, p, "session", arena, arena_size, &out->pass_, &base, err);
  if (s != Status::kOk) {
    if (opts.lock_memory && fits) munlock(arena, host_bytes(m, p));
    return s;
  }
  out->state_ = base + p.state;
  out->pass_.chunked_prefill = opts.chunked_prefill;
  out->prefault_ = opts.prefault;
  if (opts.context_full != ContextFull::kRefuse && opts.context_full != ContextFull::kSlide) {
    release_pass(&out->pass_);
    out->state_ = nullptr;
    return fail(err, Status::kInvalidArgument, "context_full %d is neither kRefuse nor kSlide",
                static_cast<int>(opts.context_full));
  }
  out->context_full_ = opts.context_full;
  if (opts.lock_memory) {  // this session locked it: its destructor unlocks it
    out->locked_ = arena;
    out->locked_bytes_ = host_bytes(m, p);
  }
  const DeviceHooks* dev = device_hooks(m.backend);
  if (dev) {  // every row's state pointer in one copy, through the pinned staging
    DevicePass* d = device_pass(out->pass_);
    dev->enter(*d);
    for (size_t i = 0; i < p.rows; ++i) d->io_states[i] = out->state_;
    s = m.backend->upload(out->pass_.states, d->io_states, p.rows * sizeof(unsigned char*));
  } else {
    for (size_t i = 0; i < p.rows; ++i) out->pass_.states[i] = out->state_;
  }
  if (s == Status::kOk) s = out->reset();
  if (s != Status::kOk) {
    release_pass(&out->pass_);
    out->state_ = nullptr;
    return fail(err, s, "session: the device failed to set up the state");
  }
  if (dev) {  // record the decode step, with and without its outputs (nothing runs)
    for (uint32_t key : {kStepOut, kStepNoOut}) {
      const QueueArgs a{out->pass_, 1, key == kStepOut ? 1u : 0u};
      if ((s = dev->record(device_pass(out->pass_), key, queue_recorded, &a, sizeof a, err)) != Status::kOk) {
        release_pass(&out->pass_);
        out->state_ = nullptr;
        return s;
      }
    }
  }
  return Status::kOk;
}

Session::~Session() {
  release_pass(&pass_);
  if (locked_) munlock(locked_, locked_bytes_);
}

Session& Session::operator=(Session&& o) noexcept {
  if (this == &o) return *this;
  take_pass(&pass_, &o.pass_);
  state_ = o.state_;
  o.state_ = nullptr;
  prefault_ = o.prefault_;
  held_ = o.held_;
  context_full_ = o.context_full_;
  if (locked_) munlock(locked_, locked_bytes_);
  locked_ = o.locked_;
  locked_bytes_ = o.locked_bytes_;
  o.locked_ = nullptr;
  o.locked_bytes_ = 0;
  return *this;
}

size_t Session::arena_bytes() const {
  return pass_.impl ? host_bytes(*pass_.impl, layout_arena(*pass_.impl, pass_.max_rows, true, pass_.chunked_prefill)) : 0;
}

namespace {
const StateSlot* find_slot(const ModelImpl* m, const char* name) {
  if (!m || !name) return nullptr;
  for (uint32_t i = 0; i < m->n_state_slots; ++i)
    if (std::strcmp(m->state_slots[i].name, name) == 0) return &m->state_slots[i];
  return nullptr;
}
}  // namespace

Status Session::clone(void* arena, size_t arena_size, Session* out, Error* err) const {
  if (!pass_.impl) return fail(err, Status::kBadState, "session is not initialised");
  if (out == this) return fail(err, Status::kInvalidArgument, "clone into itself");
  SessionOptions o;
  o.pool = pass_.pool;
  o.prefill_chunk = pass_.max_rows;
  o.prefault = prefault_;
  o.lock_memory = locked_ != nullptr;
  o.context_full = context_full_;
  o.chunked_prefill = pass_.chunked_prefill;
  Status s = init(model(), o, arena, arena_size, out, err);
  if (s != Status::kOk) return s;
  if ((s = pass_.impl->backend->copy(out->state_, state_, pass_.impl->state_bytes)) != Status::kOk) {
    *out = Session{};
    return fail(err, s, "clone: the device failed to copy the state");
  }
  out->held_ = held_;
  return Status::kOk;
}

bool Session::refuses(size_t n) const {
  const uint64_t c = pass_.impl->info.max_context;
  return c && context_full_ == ContextFull::kRefuse && (held_ > c || n > c - held_);
}

Status Session::reset() {
  if (!pass_.impl) return Status::kBadState;
  if (const DevicePass* d = device_pass(pass_)) pass_.impl->backend->device->enter(*d);
  held_ = 0;
  return pass_.impl->backend->zero(state_, pass_.impl->state_bytes);
}

Status Session::step(int32_t token, float* logits, size_t n_logits) {
  if (!pass_.impl) return Status::kBadState;
  const ModelImpl& m = *pass_.impl;
  if (m.d_input) return Status::kInvalidArgument;  // a vector model
  if (token < 0 || static_cast<uint32_t>(token) >= m.info.vocab_size) return Status::kTokenRange;
  if (logits && n_logits != m.info.vocab_size) return Status::kInvalidArgument;
  if (refuses(1)) return Status::kContextFull;
  ++held_;
  if (const DevicePass* d = device_pass(pass_)) {
    m.backend->device->enter(*d);
    d->io_tokens[0] = token;
    return device_pass_run(pass_, 1, logits, 1);
  }
  m.backend->upload(pass_.tokens, &token, sizeof token);
  run_pass(pass_, 1, logits, 1);  // the CPU writes the caller's logits
  return Status::kOk;
}

Status Session::prefill(const int32_t* tokens, size_t n_tokens, float* logits, size_t n_logits) {
  if (!pass_.impl) return Status::kBadState;
  const ModelImpl& m = *pass_.impl;
  if (m.d_input) return Status::kInvalidArgument;  // a vector model
  if (n_tokens > 0 && !tokens) return Status::kInvalidArgument;
  if (logits && n_logits != m.info.vocab_size) return Status::kInvalidArgument;
  for (size_t i = 0; i < n_tokens; ++i)
    if (tokens[i] < 0 || static_cast<uint32_t>(tokens[i]) >= m.info.vocab_size) return Status::kTokenRange;
  if (refuses(n_tokens)) return Status::kContextFull;
  const DevicePass* d = device_pass(pass_);
  if (d) m.backend->device->enter(*d);
  // Chunks of pass_.max_rows tokens: each weight is read once per chunk.
  for (size_t i = 0; i < n_tokens; i += pass_.max_rows) {
    const size_t n = n_tokens - i < pass_.max_rows ? n_tokens - i : pass_.max_rows;
    float* out = i + n == n_tokens ? logits : nullptr;
    held_ += n;
    if (d) {
      std::memcpy(d->io_tokens, tokens + i, n * sizeof(int32_t));
      const Status s = device_pass_run(pass_, n, out, 1);
      if (s != Status::kOk) return s;
      continue;
    }
    m.backend->upload(pass_.tokens, tokens + i, n * sizeof(int32_t));
    run_pass(pass_, n, out, 1);
  }
  return Status::kOk;
}

namespace {
// True if every value is finite; branch-free over the values, so a NaN costs what a number does.
bool all_finite(const float* v, size_t n) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, &v[i], 4);
    bad |= static_cast<uint32_t>((b & 0x7F800000u) == 0x7F800000u);  // exponent all ones: Inf or NaN
  }
  return bad == 0;
}
}  // namespace

Status Session::step_vector(const float* input, size_t n_input, float* output, size_t n_output) {
  return prefill_vectors(input, 1, n_input, output, n_output);
}

Status Session::prefill_vectors(const float* inputs, size_t n_steps, size_t n_input, float* output,
                                size_t n_output) {
  if (!pass_.impl) return Status::kBadState;
  const ModelImpl& m = *pass_.impl;
  const size_t din = m.d_input, dout = m.d_output;
  if (!din || !inputs || n_steps == 0 || n_steps > SIZE_MAX / din || n_input != n_steps * din)
    return Status::kInvalidArgument;
  const bool every = output && n_steps > 1 && n_output == n_steps * dout;
  if (output && n_output != dout && !every) return Status::kInvalidArgument;
  if (!all_finite(inputs, n_input)) return Status::kNonFinite;
  const DevicePass* d = device_pass(pass_);
  if (d) m.backend->device->enter(*d);
  for (size_t i = 0; i < n_steps; i += pass_.max_rows) {
    const size_t n = n_steps - i < pass_.max_rows ? n_steps - i : pass_.max_rows;
    held_ += n;
    if (d) {
      std::memcpy(d->io_inputs, inputs + i * din, n * din * sizeof(float));
      const Status s = every ? device_pass_run(pass_, n, output + i * dout, n)
                             : device_pass_run(pass_, n, i + n == n_steps ? output : nullptr, 1);
      if (s != Status::kOk) return s;
      continue;
    }
    m.backend->upload(pass_.inputs, inputs + i * din, n * din * sizeof(float));
    if (every) run_pass(pass_, n, output + i * dout, n);
    else run_pass(pass_, n, i + n == n_steps ? output : nullptr, 1);
  }
  return Status::kOk;
}

// ---- Batch: one forward pass whose row i advances sessions[i]'s state.

Status Batch::footprint(const Model& model, const BatchOptions& opts, size_t* bytes) {
  if (!model.ok() || !bytes || !rows_ok(opts.max_streams)) return Status::kInvalidArgument;
  *bytes = host_bytes(*model.impl(), layout_arena(*model.impl(), opts.max_streams, false));
  return Status::kOk;
}

Status Batch::init(const Model& model, const BatchOptions& opts, void* arena, size_t arena_size, Batch* out,
                   Error* err) {
  if (!out) return fail(err, Status::kInvalidArgument, "out is null");
  *out = Batch{};
  if (!model.ok()) return fail(err, Status::kBadState, "model is not initialised");
  if (!rows_ok(opts.max_streams))
    return fail(err, Status::kInvalidArgument, "max_streams %u is outside [1, %u]", opts.max_streams,
                kMaxPrefillChunk);
  const ModelImpl& m = *model.impl();
  unsigned char* base = nullptr;
  return place_pass(m, opts.pool, layout_arena(m, opts.max_streams, false), "batch", arena, arena_size, &out->pass_,
                    &base, err);
}

Batch::~Batch() { release_pass(&pass_); }

Batch& Batch::operator=(Batch&& o) noexcept {
  take_pass(&pass_, &o.pass_);
  return *this;
}

Status Batch::step(Session* const* sessions, const int32_t* tokens, size_t n, float* logits, size_t n_logits,
                   Status* stream_status, BadStream on_bad) {
  if (!pass_.impl) return Status::kBadState;
  const ModelImpl& m = *pass_.impl;
  if (m.d_input || !tokens) return Status::kInvalidArgument;
  if (logits && (n > pass_.max_rows || n_logits != n * m.info.vocab_size)) return Status::kInvalidArgument;
  return run(sessions, tokens, nullptr, n, logits, stream_status, on_bad);
}

Status Batch::step_vectors(Session* const* sessions, const float* inputs, size_t n, size_t n_input, float* outputs,
                           size_t n_output, Status* stream_status, BadStream on_bad) {
  if (!pass_.impl) return Status::kBadState;
  const ModelImpl& m = *pass_.impl;
  if (!m.d_input || !inputs || n > pass_.max_rows || n_input != n * m.d_input) return Status::kInvalidArgument;
  if (outputs && n_output != n * m.d_output) return Status::kInvalidArgument;
  return run(sessions, nullptr, inputs, n, outputs, stream_status, on_bad);
}

// One pass over the streams whose input is good: their rows are packed to the front of the slots (in
// order), the outputs come back packed into `out`, and are then moved to each stream's row (from the
// last, so no row is overwritten before it moves); a skipped stream's row is filled with NaN.
Status Batch::run(Session* const* sessions, const int32_t* tokens, const float* inputs, size_t n, float* out,
                  Status* stream_status, BadStream on_bad) {
  const ModelImpl& m = *pass_.impl;
  if (!sessions || n < 1 || n > pass_.max_rows) return Status::kInvalidArgument;
  if (on_bad != BadStream::kRefuseAll && on_bad != BadStream::kSkip) return Status::kInvalidArgument;
  if (on_bad == BadStream::kSkip && !stream_status) return Status::kInvalidArgument;
  const size_t din = m.d_input, dout = m.d_output;
  // This step's number, unique in the process (one lock-free increment): what marks its sessions.
  static std::atomic<uint64_t> steps{0};
  const uint64_t mark = steps.fetch_add(1, std::memory_order_relaxed) + 1;
  Status first_bad = Status::kOk;
  size_t good = 0;
  for (size_t i = 0; i < n; ++i) {
    Session* s = sessions[i];
    Status v = Status::kOk;
    if (!s || s->pass_.impl != &m) {
      v = Status::kInvalidArgument;  // another model, or not initialised
    } else if (s->batch_step_ == mark) {
      v = Status::kInvalidArgument;  // twice in one pass would advance one state by two rows
    } else {
      s->batch_step_ = mark;
      if (tokens) {
        if (tokens[i] < 0 || static_cast<uint32_t>(tokens[i]) >= m.info.vocab_size) v = Status::kTokenRange;
      } else if (!all_finite(inputs + i * din, din)) {
        v = Status::kNonFinite;
      }
      if (v == Status::kOk && s->refuses(1)) v = Status::kContextFull;
    }
    if (stream_status) stream_status[i] = v;
    if (v == Status::kOk) ++good;
    else if (first_bad == Status::kOk) first_bad = v;
  }
  if (first_bad != Status::kOk && on_bad == BadStream::kRefuseAll) return first_bad;
  // Row r of the pass: the r-th good stream.
  const DevicePass* d = device_pass(pass_);
  const DeviceHooks* h = d ? m.backend->device : nullptr;
  if (h) h->enter(*d);
  for (size_t i = 0, r = 0; i < n; ++i) {
    if (stream_status ? stream_status[i] != Status::kOk : false) continue;
    unsigned char* state = sessions[i]->state_;
    ++sessions[i]->held_;
    if (h) {
      if (tokens) d->io_tokens[r] = tokens[i];
      else std::memcpy(d->io_inputs + r * din, inputs + i * din, din * sizeof(float));
      d->io_states[r] = state;
    } else {
      if (tokens) m.backend->upload(pass_.tokens + r, tokens + i, sizeof(int32_t));
      else m.backend->upload(pass_.inputs + r * din, inputs + i * din, din * sizeof(float));
      m.backend->upload(&pass_.states[r], &state, sizeof state);
    }
    ++r;
  }
  if (good > 0) {
    if (h) {
      h->to_device(*d, pass_.states, d->io_states, good * sizeof(unsigned char*));
      if (const Status s = device_pass_run(pass_, good, out, good); s != Status::kOk) return s;
    } else {
      run_pass(pass_, good, out, good);
    }
  }
  if (out && good < n) {  // unpack: good rows to their streams' rows, NaN in the skipped ones
    size_t r = good;
    for (size_t i = n; i-- > 0;) {
      float* row = out + i * dout;
      if (stream_status[i] == Status::kOk) {
        --r;
        if (r != i) std::memmove(row, out + r * dout, dout * sizeof(float));
      } else {
        for (size_t j = 0; j < dout; ++j) row[j] = __builtin_nanf("");
      }
    }
  }
  return Status::kOk;
}

namespace {
// State blob header, little-endian, 64 bytes.
struct StateHeader {
  char magic[4];         // "RLST"
  uint32_t version;      // 1
  uint64_t fingerprint;  // ModelImpl::fingerprint
  uint64_t payload_bytes;
  uint64_t checksum;     // hash64 of the payload
  unsigned char reserved[32];  // zero in version 1; a blob with anything else is refused
};
static_assert(sizeof(StateHeader) == Session::kStateHeaderBytes, "state header is 64 bytes");
}  // namespace

size_t Session::state_size() const { return pass_.impl ? kStateHeaderBytes + pass_.impl->state_bytes : 0; }

Status Session::state_copy_out(void* dst, size_t size) const {
  if (!pass_.impl) return Status::kBadState;
  if (!dst || size != state_size()) return Status::kInvalidArgument;
  const ModelImpl& m = *pass_.impl;
  StateHeader h{};
  std::memcpy(h.magic, "RLST", 4);
  h.version = 1;
  h.fingerprint = m.fingerprint;
  h.payload_bytes = m.state_bytes;
  unsigned char* payload = static_cast<unsigned char*>(dst) + sizeof h;
  if (const DevicePass* d = device_pass(pass_)) m.backend->device->enter(*d);
  if (const Status s = m.backend->download(payload, state_, m.state_bytes); s != Status::kOk) return s;
  h.checksum = hash64(payload, m.state_bytes);
  std::memcpy(dst, &h, sizeof h);
  return Status::kOk;
}

Status Session::state_copy_in(const void* src, size_t size) {
  if (!pass_.impl) return Status::kBadState;
  if (!src) return Status::kInvalidArgument;
  const ModelImpl& m = *pass_.impl;
  if (size != state_size()) return Status::kStateMismatch;
  StateHeader h;
  std::memcpy(&h, src, sizeof h);
  const unsigned char* payload = static_cast<const unsigned char*>(src) + sizeof h;
  static const unsigned char kZero[sizeof h.reserved] = {0};
  if (std::memcmp(h.magic, "RLST", 4) != 0 || h.version != 1 || h.fingerprint != m.fingerprint ||
      h.payload_bytes != m.state_bytes || std::memcmp(h.reserved, kZero, sizeof kZero) != 0 ||
      h.checksum != hash64(payload, m.state_bytes))
    return Status::kStateMismatch;
  if (const DevicePass* d = device_pass(pass_)) m.backend->device->enter(*d);
  // The tokens the blob's state holds: its position, where the model keeps one.
  int64_t pos = 0;
  if (const StateSlot* sl = find_slot(&m, "position"); sl && sl->type == StateType::kI64)
    std::memcpy(&pos, payload + sl->offset, sizeof pos);
  held_ = pos > 0 ? static_cast<uint64_t>(pos) : 0;
  return m.backend->upload(state_, payload, m.state_bytes);  // kDeviceError: the state is undefined
}

const float* Session::state_tensor(const char* name, size_t* n_floats) const {
  if (device_pass(pass_)) return nullptr;  // device memory: state_copy_out
  const StateSlot* sl = find_slot(pass_.impl, name);
  if (!sl || sl->type != StateType::kF32) return nullptr;  // other element types: state_tensor_bytes
  if (n_floats) *n_floats = sl->count;
  return reinterpret_cast<const float*>(state_ + sl->offset);
}

const void* Session::state_tensor_bytes(const char* name, size_t* bytes) const {
  if (device_pass(pass_)) return nullptr;  // device memory: state_copy_out
  const StateSlot* sl = find_slot(pass_.impl, name);
  if (!sl) return nullptr;
  if (bytes) *bytes = sl->bytes();
  return state_ + sl->offset;
}

}  // namespace rill
