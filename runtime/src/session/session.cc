// Session: a stream's persistent state and scratch, placed in caller memory. The step path below
// checks only caller input and never allocates, throws or does I/O; it waits on nothing but the
// pool's threads computing its own products (rill.hpp, ParallelFor).
#include <cstdint>
#include <cstring>

#include "arch/arch.h"
#include "backend/backend.h"
#include "core/hash.h"

namespace rill {

namespace {
constexpr uint32_t kMaxPrefillChunk = 4096;

// The plan of a session (with_state) or of a batch: where each region of the arena lies (offsets,
// kAlign-aligned), for forward passes of up to `rows` rows.
struct Plan {
  size_t rows, state, tokens, inputs, states, scratch, work, total;
};

Plan make_plan(const ModelImpl& m, size_t rows, bool with_state) {
  Plan p{};
  size_t off = 0;
  auto region = [&off](size_t bytes) {
    const size_t at = off;
    off += align_up(bytes, kAlign);
    return at;
  };
  p.rows = rows;
  p.state = region(with_state ? m.state_bytes : 0);
  p.tokens = region(rows * sizeof(int32_t));
  p.inputs = region(rows * m.d_input * sizeof(float));
  p.states = region(rows * sizeof(unsigned char*));
  p.scratch = region(find_arch(m.arch)->scratch_bytes(m, rows));
  p.work = region(m.backend->work_bytes(m.backend, rows, m.max_cols));
  p.total = off;
  return p;
}

bool rows_ok(uint32_t rows) { return rows >= 1 && rows <= kMaxPrefillChunk; }

// Checks `arena` against plan p and places a pass's slots in it (Session::init, Batch::init).
Status place_pass(const ModelImpl& m, const ParallelFor* pool, const Plan& p, const char* what, void* arena,
                  size_t arena_size, PassSlots* out, Error* err) {
  if (!arena || reinterpret_cast<uintptr_t>(arena) % kAlign != 0)
    return fail(err, Status::kAlignment, "%s arena must be non-null and %zu-byte aligned", what, kAlign);
  if (arena_size < p.total)
    return fail(err, Status::kArenaTooSmall, "%s arena is %zu bytes, %zu needed", what, arena_size, p.total);
  // The CPU backend's memory is the host's: the arena itself.
  unsigned char* base = static_cast<unsigned char*>(arena);
  *out = PassSlots{&m,
                   pool,
                   static_cast<uint32_t>(p.rows),
                   reinterpret_cast<int32_t*>(base + p.tokens),
                   reinterpret_cast<float*>(base + p.inputs),
                   reinterpret_cast<unsigned char**>(base + p.states),
                   base + p.scratch,
                   base + p.work};
  return Status::kOk;
}

// The first n rows of the slots through the model; logits of the last n_logits rows.
void run_pass(const PassSlots& p, size_t n, float* logits, size_t n_logits) {
  const ModelImpl& m = *p.impl;
  const Exec x{m.backend, p.pool, nullptr, p.scratch, p.work};
  find_arch(m.arch)->forward(x, m, Rows{n, p.tokens, p.inputs, p.states, logits, logits ? n_logits : 0u});
}

// Moves a handle's slots, leaving the source empty (one handle per arena).
void take_pass(PassSlots* to, PassSlots* from) {
  if (to == from) return;
  *to = *from;
  from->impl = nullptr;
}
}  // namespace

Status Session::footprint(const Model& model, const SessionOptions& opts, size_t* bytes) {
  if (!model.ok() || !bytes) return Status::kInvalidArgument;
  if (!rows_ok(opts.prefill_chunk)) return Status::kInvalidArgument;
  *bytes = make_plan(*model.impl(), opts.prefill_chunk, true).total;
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
  const Plan p = make_plan(m, opts.prefill_chunk, true);
  const Status s = place_pass(m, opts.pool, p, "session", arena, arena_size, &out->pass_, err);
  if (s != Status::kOk) return s;
  out->state_ = static_cast<unsigned char*>(arena) + p.state;
  for (size_t i = 0; i < p.rows; ++i) m.backend->upload(&out->pass_.states[i], &out->state_, sizeof(unsigned char*));
  out->reset();
  return Status::kOk;
}

Session& Session::operator=(Session&& o) noexcept {
  state_ = o.state_;
  take_pass(&pass_, &o.pass_);
  return *this;
}

size_t Session::arena_bytes() const { return pass_.impl ? make_plan(*pass_.impl, pass_.max_rows, true).total : 0; }

Status Session::clone(void* arena, size_t arena_size, Session* out, Error* err) const {
  if (!pass_.impl) return fail(err, Status::kBadState, "session is not initialised");
  if (out == this) return fail(err, Status::kInvalidArgument, "clone into itself");
  SessionOptions o;
  o.pool = pass_.pool;
  o.prefill_chunk = pass_.max_rows;
  const Status s = init(model(), o, arena, arena_size, out, err);
  if (s != Status::kOk) return s;
  pass_.impl->backend->copy(out->state_, state_, pass_.impl->state_bytes);
  return Status::kOk;
}

void Session::reset() {
  if (pass_.impl) pass_.impl->backend->zero(state_, pass_.impl->state_bytes);
}

Status Session::step(int32_t token, float* logits, size_t n_logits) {
  if (!pass_.impl) return Status::kBadState;
  const ModelImpl& m = *pass_.impl;
  if (m.d_input) return Status::kInvalidArgument;  // a vector model
  if (token < 0 || static_cast<uint32_t>(token) >= m.info.vocab_size) return Status::kTokenRange;
  if (logits && n_logits != m.info.vocab_size) return Status::kInvalidArgument;
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
  // Chunks of pass_.max_rows tokens: each weight is read once per chunk.
  for (size_t i = 0; i < n_tokens; i += pass_.max_rows) {
    const size_t n = n_tokens - i < pass_.max_rows ? n_tokens - i : pass_.max_rows;
    m.backend->upload(pass_.tokens, tokens + i, n * sizeof(int32_t));
    run_pass(pass_, n, i + n == n_tokens ? logits : nullptr, 1);
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
  for (size_t i = 0; i < n_steps; i += pass_.max_rows) {
    const size_t n = n_steps - i < pass_.max_rows ? n_steps - i : pass_.max_rows;
    m.backend->upload(pass_.inputs, inputs + i * din, n * din * sizeof(float));
    if (every) run_pass(pass_, n, output + i * dout, n);
    else run_pass(pass_, n, i + n == n_steps ? output : nullptr, 1);
  }
  return Status::kOk;
}

// ---- Batch: one forward pass whose row i advances sessions[i]'s state.

Status Batch::footprint(const Model& model, const BatchOptions& opts, size_t* bytes) {
  if (!model.ok() || !bytes || !rows_ok(opts.max_streams)) return Status::kInvalidArgument;
  *bytes = make_plan(*model.impl(), opts.max_streams, false).total;
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
  return place_pass(m, opts.pool, make_plan(m, opts.max_streams, false), "batch", arena, arena_size, &out->pass_,
                    err);
}

Batch& Batch::operator=(Batch&& o) noexcept {
  take_pass(&pass_, &o.pass_);
  return *this;
}

Status Batch::step(Session* const* sessions, const int32_t* tokens, size_t n, float* logits, size_t n_logits) {
  if (!pass_.impl) return Status::kBadState;
  const ModelImpl& m = *pass_.impl;
  if (!sessions || !tokens || n < 1 || n > pass_.max_rows || m.d_input) return Status::kInvalidArgument;
  if (logits && n_logits != n * m.info.vocab_size) return Status::kInvalidArgument;
  for (size_t i = 0; i < n; ++i) {
    const Session* s = sessions[i];
    if (!s || s->pass_.impl != &m) return Status::kInvalidArgument;  // another model, or not initialised
    if (tokens[i] < 0 || static_cast<uint32_t>(tokens[i]) >= m.info.vocab_size) return Status::kTokenRange;
    for (size_t j = 0; j < i; ++j)  // twice in one pass would advance one state by two rows
      if (sessions[j] == s) return Status::kInvalidArgument;
  }
  m.backend->upload(pass_.tokens, tokens, n * sizeof(int32_t));
  for (size_t i = 0; i < n; ++i) m.backend->upload(&pass_.states[i], &sessions[i]->state_, sizeof(unsigned char*));
  run_pass(pass_, n, logits, n);
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
  m.backend->download(payload, state_, m.state_bytes);
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
  m.backend->upload(state_, payload, m.state_bytes);
  return Status::kOk;
}

namespace {
const StateSlot* find_slot(const ModelImpl* m, const char* name) {
  if (!m || !name) return nullptr;
  for (uint32_t i = 0; i < m->n_state_slots; ++i)
    if (std::strcmp(m->state_slots[i].name, name) == 0) return &m->state_slots[i];
  return nullptr;
}
}  // namespace

const float* Session::state_tensor(const char* name, size_t* n_floats) const {
  const StateSlot* sl = find_slot(pass_.impl, name);
  if (!sl || sl->type != StateType::kF32) return nullptr;  // other element types: state_tensor_bytes
  if (n_floats) *n_floats = sl->count;
  return reinterpret_cast<const float*>(state_ + sl->offset);
}

const void* Session::state_tensor_bytes(const char* name, size_t* bytes) const {
  const StateSlot* sl = find_slot(pass_.impl, name);
  if (!sl) return nullptr;
  if (bytes) *bytes = sl->bytes();
  return state_ + sl->offset;
}

}  // namespace rill
