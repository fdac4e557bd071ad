// Session: a stream's persistent state and scratch, placed in caller memory. The step path below
// checks only caller input and never allocates, throws or does I/O; it waits on nothing but the
// pool's threads computing its own products (rill.hpp, ParallelFor).
#include <cstring>

#include "arch/arch.h"
#include "backend/backend.h"
#include "core/hash.h"

namespace rill {

namespace {
constexpr uint32_t kMaxPrefillChunk = 4096;

// The session's plan: where each region of the arena lies (offsets, kAlign-aligned), for forward
// passes of up to `rows` rows.
struct Plan {
  size_t rows, state, tokens, states, scratch, work, total;
};

Status make_plan(const ModelImpl& m, const SessionOptions& o, Plan* p) {
  if (o.prefill_chunk < 1 || o.prefill_chunk > kMaxPrefillChunk) return Status::kInvalidArgument;
  const size_t rows = o.prefill_chunk;
  size_t off = 0;
  auto region = [&off](size_t bytes) {
    const size_t at = off;
    off += align_up(bytes, kAlign);
    return at;
  };
  p->rows = rows;
  p->state = region(m.state_bytes);
  p->tokens = region(rows * sizeof(int32_t));
  p->states = region(rows * sizeof(unsigned char*));
  p->scratch = region(find_arch(m.arch)->scratch_bytes(m, rows));
  p->work = region(m.backend->work_bytes(m.backend, rows, m.max_cols));
  p->total = off;
  return Status::kOk;
}
}  // namespace

Status Session::footprint(const Model& model, const SessionOptions& opts, size_t* bytes) {
  if (!model.ok() || !bytes) return Status::kInvalidArgument;
  Plan p;
  const Status s = make_plan(*model.impl(), opts, &p);
  if (s != Status::kOk) return s;
  *bytes = p.total;
  return Status::kOk;
}

Status Session::init(const Model& model, const SessionOptions& opts, void* arena, size_t arena_size, Session* out,
                     Error* err) {
  if (!out) return fail(err, Status::kInvalidArgument, "out is null");
  *out = Session{};
  if (!model.ok()) return fail(err, Status::kBadState, "model is not initialised");
  const ModelImpl& m = *model.impl();
  Plan p;
  if (make_plan(m, opts, &p) != Status::kOk)
    return fail(err, Status::kInvalidArgument, "prefill_chunk %u is outside [1, %u]", opts.prefill_chunk,
                kMaxPrefillChunk);
  if (!arena || reinterpret_cast<uintptr_t>(arena) % kAlign != 0)
    return fail(err, Status::kAlignment, "session arena must be non-null and %zu-byte aligned", kAlign);
  if (arena_size < p.total)
    return fail(err, Status::kArenaTooSmall, "session arena is %zu bytes, %zu needed", arena_size, p.total);
  // The CPU backend's memory is the host's: the arena itself.
  unsigned char* base = static_cast<unsigned char*>(arena);
  out->model_ = &model;
  out->pool_ = opts.pool;
  out->max_rows_ = static_cast<uint32_t>(p.rows);
  out->state_ = base + p.state;
  out->tokens_ = reinterpret_cast<int32_t*>(base + p.tokens);
  out->states_ = reinterpret_cast<unsigned char**>(base + p.states);
  out->scratch_ = base + p.scratch;
  out->work_ = base + p.work;
  for (size_t i = 0; i < p.rows; ++i) m.backend->upload(&out->states_[i], &out->state_, sizeof(unsigned char*));
  out->reset();
  return Status::kOk;
}

void Session::reset() {
  if (model_) model_->impl()->backend->zero(state_, model_->impl()->state_bytes);
}

// The first n (<= max_rows_) tokens of the input slots through the model; logits of the last one.
void Session::forward(size_t n, float* logits) {
  const ModelImpl& m = *model_->impl();
  const Exec x{m.backend, pool_, nullptr, scratch_, work_};
  const Rows rows{n, tokens_, states_, logits, logits ? 1u : 0u};  // the CPU writes the caller's logits
  find_arch(m.arch)->forward(x, m, rows);
}

Status Session::step(int32_t token, float* logits, size_t n_logits) {
  if (!model_) return Status::kBadState;
  const ModelImpl& m = *model_->impl();
  if (token < 0 || static_cast<uint32_t>(token) >= m.info.vocab_size) return Status::kTokenRange;
  if (logits && n_logits != m.info.vocab_size) return Status::kInvalidArgument;
  m.backend->upload(tokens_, &token, sizeof token);
  forward(1, logits);
  return Status::kOk;
}

Status Session::prefill(const int32_t* tokens, size_t n_tokens, float* logits, size_t n_logits) {
  if (!model_) return Status::kBadState;
  const ModelImpl& m = *model_->impl();
  if (n_tokens > 0 && !tokens) return Status::kInvalidArgument;
  if (logits && n_logits != m.info.vocab_size) return Status::kInvalidArgument;
  for (size_t i = 0; i < n_tokens; ++i)
    if (tokens[i] < 0 || static_cast<uint32_t>(tokens[i]) >= m.info.vocab_size) return Status::kTokenRange;
  // Chunks of max_rows_ tokens: each weight is read once per chunk.
  for (size_t i = 0; i < n_tokens; i += max_rows_) {
    const size_t n = n_tokens - i < max_rows_ ? n_tokens - i : max_rows_;
    m.backend->upload(tokens_, tokens + i, n * sizeof(int32_t));
    forward(n, i + n == n_tokens ? logits : nullptr);
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

size_t Session::state_size() const { return model_ ? kStateHeaderBytes + model_->impl()->state_bytes : 0; }

Status Session::state_copy_out(void* dst, size_t size) const {
  if (!model_) return Status::kBadState;
  if (!dst || size != state_size()) return Status::kInvalidArgument;
  const ModelImpl& m = *model_->impl();
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
  if (!model_) return Status::kBadState;
  if (!src) return Status::kInvalidArgument;
  const ModelImpl& m = *model_->impl();
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

const float* Session::state_tensor(const char* name, size_t* n_floats) const {
  if (!model_ || !name) return nullptr;
  const ModelImpl& m = *model_->impl();
  for (uint32_t i = 0; i < m.n_state_slots; ++i) {
    if (std::strcmp(m.state_slots[i].name, name) == 0) {
      if (n_floats) *n_floats = m.state_slots[i].floats;
      return reinterpret_cast<const float*>(state_ + m.state_slots[i].offset);
    }
  }
  return nullptr;
}

}  // namespace rill
