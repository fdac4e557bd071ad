// Session: a stream's persistent state and scratch, placed in caller memory. The step path below
// checks only caller input, never allocates, throws, locks or does I/O.
#include <cmath>
#include <cstring>

#include "arch/arch.h"
#include "core/hash.h"
#include "rill/extension.hpp"

namespace rill {

namespace {
void* pool_handle(const ThreadPool* p) { return p->threads() > 1 ? p->handle() : nullptr; }
}  // namespace

Status Session::footprint(const Model& model, const SessionOptions&, size_t* bytes) {
  if (!model.ok() || !bytes) return Status::kInvalidArgument;
  const ModelImpl& m = *model.impl();
  *bytes = align_up(m.state_bytes, kAlign) + align_up(m.scratch_bytes, kAlign);
  return Status::kOk;
}

Status Session::init(const Model& model, const SessionOptions& opts, void* arena, size_t arena_size, Session* out,
                     Error* err) {
  if (!out) return fail(err, Status::kInvalidArgument, "out is null");
  *out = Session{};
  if (!model.ok()) return fail(err, Status::kBadState, "model is not initialised");
  size_t need = 0;
  (void)footprint(model, opts, &need);
  if (!arena || reinterpret_cast<uintptr_t>(arena) % kAlign != 0)
    return fail(err, Status::kAlignment, "session arena must be non-null and %zu-byte aligned", kAlign);
  if (arena_size < need)
    return fail(err, Status::kArenaTooSmall, "session arena is %zu bytes, %zu needed", arena_size, need);
  out->model_ = &model;
  out->state_ = static_cast<unsigned char*>(arena);
  out->scratch_ = out->state_ + align_up(model.impl()->state_bytes, kAlign);
  out->pool_ = opts.pool ? pool_handle(opts.pool) : nullptr;
  out->reset();
  return Status::kOk;
}

void Session::reset() {
  if (model_) std::memset(state_, 0, model_->impl()->state_bytes);
}

Status Session::step(int32_t token, float* logits, size_t n_logits) {
  if (!model_) return Status::kBadState;
  const ModelImpl& m = *model_->impl();
  if (token < 0 || static_cast<uint32_t>(token) >= m.info.vocab_size) return Status::kTokenRange;
  if (logits && n_logits != m.info.vocab_size) return Status::kInvalidArgument;
  find_arch(m.arch)->step(m, state_, scratch_, token, logits, pool_);
  return Status::kOk;
}

Status Session::prefill(const int32_t* tokens, size_t n_tokens, float* logits, size_t n_logits) {
  if (!model_) return Status::kBadState;
  const ModelImpl& m = *model_->impl();
  if (n_tokens > 0 && !tokens) return Status::kInvalidArgument;
  if (logits && n_logits != m.info.vocab_size) return Status::kInvalidArgument;
  for (size_t i = 0; i < n_tokens; ++i)
    if (tokens[i] < 0 || static_cast<uint32_t>(tokens[i]) >= m.info.vocab_size) return Status::kTokenRange;
  const ArchOps* ops = find_arch(m.arch);
  if (ops->prefill) {  // batched: each weight read once per chunk of tokens
    if (n_tokens) ops->prefill(m, state_, scratch_, tokens, n_tokens, logits, pool_);
    return Status::kOk;
  }
  for (size_t i = 0; i < n_tokens; ++i)
    ops->step(m, state_, scratch_, tokens[i], (i + 1 == n_tokens) ? logits : nullptr, pool_);
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
  h.checksum = hash64(state_, m.state_bytes);
  std::memcpy(dst, &h, sizeof h);
  std::memcpy(static_cast<unsigned char*>(dst) + sizeof h, state_, m.state_bytes);
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
  std::memcpy(state_, payload, m.state_bytes);
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
