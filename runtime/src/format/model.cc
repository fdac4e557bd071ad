// Model::init: verifies a rill file completely and binds zero-copy views. Everything that can be
// proven about the file is proven here, so the step path checks only caller input.
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstring>

#include "arch/arch.h"
#include "backend/backend.h"
#include "core/hash.h"
#include "core/sha256.h"
#include "format/views.h"

namespace rill {

Status fail(Error* err, Status code, const char* fmt, ...) {
  if (err) {
    err->status = code;
#if defined(RILL_STRIP_ERROR_STRINGS)
    (void)fmt;
    err->message[0] = '\0';
#else
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
#endif
  }
  return code;
}

const char* status_str(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kInvalidArgument: return "invalid argument";
    case Status::kBadState: return "object not initialised";
    case Status::kMisuse: return "handle released, closed or never initialised";
    case Status::kBadMagic: return "not a rill model file";
    case Status::kVersion: return "unsupported format version";
    case Status::kCorrupt: return "corrupt model file";
    case Status::kUnsupported: return "unsupported feature";
    case Status::kTruncated: return "truncated model file";
    case Status::kIo: return "I/O error";
    case Status::kArenaTooSmall: return "arena too small";
    case Status::kAlignment: return "misaligned buffer";
    case Status::kOutOfMemory: return "out of memory";
    case Status::kNoBackend: return "backend not compiled in or no device";
    case Status::kDeviceError: return "device error";
    case Status::kTokenRange: return "token id out of range";
    case Status::kNonFinite: return "non-finite input";
    case Status::kStateMismatch: return "state blob does not belong to this model";
    case Status::kContextFull: return "the stream holds max_context tokens (the session refuses more)";
  }
  return "unknown status";
}

const char* version_string() { return RILL_VERSION_STRING; }

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kF32: return "f32";
    case DType::kF16: return "f16";
    case DType::kBF16: return "bf16";
    case DType::kI8: return "i8";
    case DType::kI4: return "i4";
  }
  return "?";
}

size_t dtype_bits(DType d) {
  switch (d) {
    case DType::kF32: return 32;
    case DType::kF16:
    case DType::kBF16: return 16;
    case DType::kI8: return 8;
    case DType::kI4: return 4;
  }
  return 0;
}

const fb::Tensor* find_tensor(const flatbuffers::Vector<flatbuffers::Offset<fb::Tensor>>* v, const char* name) {
  if (!v) return nullptr;
  for (const fb::Tensor* t : *v) {
    if (t && t->name() && std::strcmp(t->name()->c_str(), name) == 0) return t;
  }
  return nullptr;
}

namespace {

// a * b with overflow detection.
bool mul_ok(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > UINT64_MAX / a) return false;
  *out = a * b;
  return true;
}

void shape_str(const uint64_t* s, size_t n, char* buf, size_t cap) {
  size_t pos = 0;
  pos += std::snprintf(buf + pos, cap - pos, "[");
  for (size_t i = 0; i < n && pos < cap; ++i)
    pos += std::snprintf(buf + pos, cap - pos, i ? ", %llu" : "%llu", static_cast<unsigned long long>(s[i]));
  if (pos < cap) std::snprintf(buf + pos, cap - pos, "]");
}

// Reads the size prefix and checks identifier and bounds; returns the FlatBuffer span.
Status read_header(const void* data, size_t size, const unsigned char** fb, size_t* fb_size, Error* err) {
  if (!data) return fail(err, Status::kInvalidArgument, "model data is null");
  if (size < 16) return fail(err, Status::kTruncated, "model file is %zu bytes, too short for a header", size);
  const unsigned char* p = static_cast<const unsigned char*>(data);
  if (std::memcmp(p + 8, fb::ModelIdentifier(), 4) != 0)
    return fail(err, Status::kBadMagic, "not a rill model file (identifier \"%.4s\" expected at byte 8)",
                fb::ModelIdentifier());
  uint32_t n;
  std::memcpy(&n, p, 4);
  if (static_cast<uint64_t>(n) + 4 > size)
    return fail(err, Status::kTruncated, "header declares %u bytes but the file has %zu", n, size);
  *fb = p;
  *fb_size = static_cast<size_t>(n) + 4;
  return Status::kOk;
}

}  // namespace

Status bind_tensor(const FileView& f, const fb::Tensor* t, const char* what, const uint64_t* shape, size_t ndim,
                   const DType* dtypes, size_t n_dtypes, TensorView* out, Error* err, bool optional) {
  *out = TensorView{};
  if (!t) {
    if (optional) return Status::kOk;
    return fail(err, Status::kCorrupt, "tensor %s is missing", what);
  }
  const DType dt = static_cast<DType>(t->dtype());
  bool dt_ok = false;
  char allowed[48] = "";
  for (size_t i = 0; i < n_dtypes; ++i) {
    dt_ok |= dtypes[i] == dt;
    std::snprintf(allowed + std::strlen(allowed), sizeof allowed - std::strlen(allowed), "%s%s", i ? ", " : "",
                  dtype_name(dtypes[i]));
  }
  if (!dt_ok)
    return fail(err, Status::kUnsupported, "tensor %s: dtype %s not supported here (%s)", what, dtype_name(dt), allowed);
  const auto* s = t->shape();
  if (!u64_vector_ok(s)) return fail(err, Status::kCorrupt, "tensor %s: shape vector is misaligned", what);
  if (ndim > 4) return fail(err, Status::kCorrupt, "tensor %s: more than 4 dimensions expected", what);
  uint64_t exp[4];
  const size_t ne = ndim;
  for (size_t i = 0; i < ne; ++i) exp[i] = shape[i];
  bool same = s->size() == ne;
  for (size_t i = 0; same && i < ne; ++i) same = s->Get(static_cast<flatbuffers::uoffset_t>(i)) == exp[i];
  if (!same) {
    char a[96], b[96];
    uint64_t got[8];
    const size_t ng = s->size() < 8 ? s->size() : 8;
    for (size_t i = 0; i < ng; ++i) got[i] = s->Get(static_cast<flatbuffers::uoffset_t>(i));
    shape_str(exp, ne, a, sizeof a);
    shape_str(got, ng, b, sizeof b);
    return fail(err, Status::kCorrupt, "tensor %s: expected shape %s, got %s", what, a, b);
  }
  uint64_t count = 1;
  for (size_t i = 0; i < ne; ++i)
    if (!mul_ok(count, exp[i], &count)) return fail(err, Status::kCorrupt, "tensor %s: shape overflows", what);
  uint64_t bits;
  if (!mul_ok(count, dtype_bits(dt), &bits)) return fail(err, Status::kCorrupt, "tensor %s: size overflows", what);
  const uint64_t bytes = (bits + 7) / 8;
  const fb::Quant* q = t->quant();
  const bool quantized = dt == DType::kI8 || dt == DType::kI4;
  if (!quantized && q && q->scheme() != fb::QuantScheme::None)
    return fail(err, Status::kCorrupt, "tensor %s: %s tensor with quantization parameters", what, dtype_name(dt));
  if (t->size() != bytes)
    return fail(err, Status::kCorrupt, "tensor %s: size field %llu, shape and dtype need %llu", what,
                static_cast<unsigned long long>(t->size()), static_cast<unsigned long long>(bytes));
  if (t->offset() > f.data_size || bytes > f.data_size - t->offset())
    return fail(err, Status::kCorrupt, "tensor %s: bytes [%llu, +%llu) lie outside the data region (%llu bytes)",
                what, static_cast<unsigned long long>(t->offset()), static_cast<unsigned long long>(bytes),
                static_cast<unsigned long long>(f.data_size));
  if ((f.data_offset + t->offset()) % kAlign != 0)
    return fail(err, Status::kCorrupt, "tensor %s: offset %llu is not %zu-byte aligned", what,
                static_cast<unsigned long long>(f.data_offset + t->offset()), kAlign);
  if (quantized) {
    // Scales: I8 one f32 per row; I4 one f16 per group (32, 64 or 128 elements of a row).
    if (ne != 2 || !q) return fail(err, Status::kCorrupt, "tensor %s: quantized tensors must be 2-D with a Quant", what);
    // The kernels read whole 32-element blocks (int8 and int4 alike) and dequantize as scale * q, so
    // columns must be a multiple of 32 and the zero point 0.
    const uint64_t rows = exp[0], cols = exp[1];
    const bool i8 = dt == DType::kI8;
    const uint32_t g = q->group_size();
    const bool rows16 = q->scheme() == (i8 ? fb::QuantScheme::PerRowRows16 : fb::QuantScheme::GroupedRows16);
    if (cols % 32 != 0 || q->zero_point() != 0 ||
        (i8 ? ((q->scheme() != fb::QuantScheme::PerRow && !rows16) || q->scale_dtype() != fb::DType::F32 || g != cols)
            : ((q->scheme() != fb::QuantScheme::Grouped && !rows16) || q->scale_dtype() != fb::DType::F16 ||
               (g != 32 && g != 64 && g != 128) || cols % g != 0)))
      return fail(err, Status::kCorrupt,
                  "tensor %s: quantization scheme %u group %u scale %s zero point %d does not fit %s [%llu, %llu] "
                  "(columns a multiple of 32, zero point 0)",
                  what, static_cast<unsigned>(q->scheme()), g, fb::EnumNameDType(q->scale_dtype()), q->zero_point(),
                  dtype_name(dt), static_cast<unsigned long long>(rows), static_cast<unsigned long long>(cols));
    const uint64_t n_scales = i8 ? rows : rows * (cols / g);
    const uint64_t sbytes = n_scales * (i8 ? 4 : 2);
    if (q->scales_size() != sbytes || q->scales_offset() > f.data_size || sbytes > f.data_size - q->scales_offset() ||
        (f.data_offset + q->scales_offset()) % kAlign != 0)
      return fail(err, Status::kCorrupt, "tensor %s: scales [%llu, +%llu) do not fit (need %llu bytes, aligned)", what,
                  static_cast<unsigned long long>(q->scales_offset()), static_cast<unsigned long long>(q->scales_size()),
                  static_cast<unsigned long long>(sbytes));
    out->scales = f.weights + q->scales_offset();
    out->group = g;
    out->rows16 = rows16;
  }
  out->data = f.weights + t->offset();
  out->dtype = dt;
  out->ndim = static_cast<uint32_t>(ne);
  for (size_t i = 0; i < ne; ++i) out->shape[i] = exp[i];
  return Status::kOk;
}

namespace {

Status open_view(const void* data, size_t size, bool verify, FileView* fv, Error* err) {
  const unsigned char* fbp = nullptr;
  size_t fb_size = 0;
  Status s = read_header(data, size, &fbp, &fb_size, err);
  if (s != Status::kOk) return s;
  if (verify) {
    flatbuffers::Verifier v(fbp, fb_size, /*max_depth=*/64, /*max_tables=*/1u << 20);
    if (!fb::VerifySizePrefixedModelBuffer(v))
      return fail(err, Status::kCorrupt, "model header failed FlatBuffers verification");
  }
  const fb::Model* m = fb::GetSizePrefixedModel(fbp);
  if (m->format_major() > kFormatMajor)
    return fail(err, Status::kVersion, "file format %u.%u is newer than this reader (%u.%u): upgrade rill",
                m->format_major(), m->format_minor(), kFormatMajor, kFormatMinor);
  if (m->format_major() == 0) return fail(err, Status::kCorrupt, "format_major is 0");
  if (m->file_size() != size) {
    if (m->file_size() > size)
      return fail(err, Status::kTruncated, "file is %zu bytes, header declares %llu: truncated", size,
                  static_cast<unsigned long long>(m->file_size()));
    return fail(err, Status::kCorrupt, "file is %zu bytes, header declares %llu", size,
                static_cast<unsigned long long>(m->file_size()));
  }
  if (m->alignment() != kAlign) return fail(err, Status::kCorrupt, "alignment %u, expected %zu", m->alignment(), kAlign);
  if (m->data_offset() < fb_size || m->data_offset() > size || m->data_size() > size - m->data_offset() ||
      m->data_offset() % kAlign != 0)
    return fail(err, Status::kCorrupt, "data region [%llu, +%llu) is not inside the file",
                static_cast<unsigned long long>(m->data_offset()), static_cast<unsigned long long>(m->data_size()));
  *fv = FileView{fbp, m, m->data_offset(), m->data_size(), nullptr};
  return Status::kOk;
}

// The file's architecture, and the model memory it needs: the implementation struct and the views,
// sized only after the hyper-parameters were checked (Architecture::view_bytes).
Status size_model(const FileView& fv, const Architecture** ops, size_t* bytes, Error* err) {
  *ops = find_arch(static_cast<Arch>(fv.model->arch()));
  if (!*ops)
    return fail(err, Status::kUnsupported, "architecture %u is not supported by this build",
                static_cast<unsigned>(fv.model->arch()));
  size_t views = 0;
  const Status s = (*ops)->view_bytes(fv, &views, err);
  if (s != Status::kOk) return s;
  *bytes = align_up(sizeof(ModelImpl), kAlign) + views;
  return Status::kOk;
}

// After bind (every tensor checked): the widest matrix, and a product op for every matrix dtype.
Status check_ops(const FileView& f, const BackendImpl& be, ModelImpl* impl, Error* err) {
  uint64_t max_cols = 0;
  auto visit = [&](const flatbuffers::Vector<flatbuffers::Offset<fb::Tensor>>* v) -> Status {
    for (const fb::Tensor* t : *v) {
      if (t->shape()->size() != 2) continue;
      max_cols = std::max(max_cols, t->shape()->Get(1));
      const auto dt = static_cast<size_t>(t->dtype());
      if (dt >= kDTypeCount || !be.ops->matmul_by_dtype[dt])
        return fail(err, Status::kUnsupported, "tensor %s: backend %s has no %s matrix product", t->name()->c_str(),
                    be.name, dtype_name(static_cast<DType>(t->dtype())));
    }
    return Status::kOk;
  };
  Status s = visit(f.model->tensors());
  for (const fb::Layer* l : *f.model->layers())
    if (s == Status::kOk) s = visit(l->tensors());
  impl->max_cols = max_cols;
  return s;
}

}  // namespace

Status Model::footprint(const void* data, size_t size, size_t* bytes, Error* err) {
  if (!bytes) return fail(err, Status::kInvalidArgument, "bytes is null");
  FileView fv;
  Status s = open_view(data, size, /*verify=*/true, &fv, err);
  if (s != Status::kOk) return s;
  const Architecture* ops = nullptr;
  return size_model(fv, &ops, bytes, err);
}

Status Model::init(const void* data, size_t size, const ModelOptions& opts, void* mem, size_t mem_size, Model* out,
                   Error* err) {
  if (!out) return fail(err, Status::kInvalidArgument, "out is null");
  out->impl_ = nullptr;
  const BackendImpl* backend = find_backend(opts.backend);
  if (!backend)
    return fail(err, Status::kNoBackend, "the %s backend is not compiled into this build (it has: %s)",
                opts.backend == Backend::kCuda ? "cuda" : "requested", compiled_backends());
  const DeviceHooks* dev = device_hooks(backend);
  if (dev) {
    Status s = dev->probe(opts.device, err);
    if (s != Status::kOk) return s;
  }
  if (reinterpret_cast<uintptr_t>(data) % kAlign != 0)
    return fail(err, Status::kAlignment, "model data must be %zu-byte aligned (a mapped file is)", kAlign);
  FileView fv;
  Status s = open_view(data, size, opts.verify, &fv, err);
  if (s != Status::kOk) return s;
  const Architecture* ops = nullptr;
  size_t need = 0;
  if ((s = size_model(fv, &ops, &need, err)) != Status::kOk) return s;
  if (!mem || reinterpret_cast<uintptr_t>(mem) % kAlign != 0)
    return fail(err, Status::kAlignment, "model memory must be non-null and %zu-byte aligned", kAlign);
  if (mem_size < need)
    return fail(err, Status::kArenaTooSmall, "model memory is %zu bytes, %zu needed", mem_size, need);
  auto* impl = new (mem) ModelImpl();
  impl->arch = ops->arch;
  impl->file = static_cast<const unsigned char*>(data);
  impl->fb_model = fv.model;
  impl->backend = backend;
  impl->device = opts.device;
  if ((s = backend->place_weights(opts.device, fv.base + fv.data_offset, fv.data_size, &fv.weights, err)) !=
      Status::kOk)
    return s;
  impl->weights = fv.weights;
  impl->max_context_option = opts.max_context;
  s = ops->bind(fv, impl, static_cast<unsigned char*>(mem) + align_up(sizeof(ModelImpl), kAlign), err);
  if (s == Status::kOk) s = check_ops(fv, *backend, impl, err);
  if (s != Status::kOk) {  // a device backend's copy of the weights goes with the failed model
    if (dev) dev->release_weights(impl->weights);
    impl->weights = nullptr;
    return s;
  }
  impl->info.arch = ops->arch;
  impl->info.backend = backend->name;
  impl->info.weight_bytes = fv.data_size;
  impl->info.state_bytes = impl->state_bytes;
  impl->info.d_input = impl->d_input;
  impl->info.d_output = impl->d_output;
  impl->info.file_bytes = size;
  if ((s = bind_tokenizer(fv.model->tokenizer(), impl->info.vocab_size, &impl->tok, err)) != Status::kOk) {
    if (dev) dev->release_weights(impl->weights);
    impl->weights = nullptr;
    return s;
  }
  if (opts.prefault || opts.lock_memory) {  // the file's bytes (the CPU's weights) and the model memory
    prefault_read(data, size);
    prefault_read(mem, need);
  }
  if (opts.lock_memory) {
    if ((s = lock_pages(data, size, "the model file", err)) != Status::kOk ||
        (s = lock_pages(mem, need, "the model memory", err)) != Status::kOk) {
      munlock(data, size);  // if that part was locked
      if (dev) dev->release_weights(impl->weights);
      impl->weights = nullptr;
      return s;
    }
    impl->locked[0] = data;
    impl->locked_bytes[0] = size;
    impl->locked[1] = mem;
    impl->locked_bytes[1] = need;
  }
  impl->info.tokenizer = impl->tok.kind;
  if (const fb::Tokenizer* tk = fv.model->tokenizer()) {
    impl->info.bos_id = tk->bos_id() < static_cast<int32_t>(impl->info.vocab_size) ? tk->bos_id() : -1;
    impl->info.eos_id = tk->eos_id() < static_cast<int32_t>(impl->info.vocab_size) ? tk->eos_id() : -1;
  }
  // Fingerprint for state blobs: architecture, shapes, state layout and the source checkpoint's hashes.
  uint64_t fp = hash64(&impl->info.arch, sizeof impl->info.arch);
  const uint32_t dims[3] = {impl->info.d_model, impl->info.n_layer, impl->info.vocab_size};
  fp = hash64(dims, sizeof dims, fp);
  if (impl->info.max_context) fp = hash64(&impl->info.max_context, sizeof impl->info.max_context, fp);
  for (uint32_t i = 0; i < impl->n_state_slots; ++i) {
    const StateSlot& sl = impl->state_slots[i];
    fp = hash64(sl.name, std::strlen(sl.name), fp);
    const uint64_t v[2] = {sl.offset, sl.count};
    fp = hash64(v, sizeof v, fp);
    if (sl.type != StateType::kF32) fp = hash64(&sl.type, sizeof sl.type, fp);  // f32 layouts hash as before
  }
  if (const fb::Provenance* p = fv.model->provenance())
    if (p->source_files())
      for (const fb::SourceFile* f : *p->source_files())
        if (f && f->sha256()) fp = hash64(f->sha256()->c_str(), f->sha256()->size(), fp);
  impl->fingerprint = fp;
  out->impl_ = impl;
  return Status::kOk;
}

Status Model::verify_data(Error* err) const {
  if (!impl_) return fail(err, Status::kBadState, "model is not initialised");
  const fb::Model* m = static_cast<const fb::Model*>(impl_->fb_model);
  if (!m->data_sha256() || m->data_sha256()->size() != 64)
    return fail(err, Status::kUnsupported, "the file carries no weight checksum");
  Sha256 h;
  const unsigned char* p = impl_->file + m->data_offset();
  uint64_t left = m->data_size();
  while (left > 0) {  // in 1 MiB pieces, so a huge region never overflows a size_t update
    const size_t n = left > (1u << 20) ? (1u << 20) : static_cast<size_t>(left);
    h.update(p, n);
    p += n;
    left -= n;
  }
  uint8_t d[32];
  char hex[65];
  h.finish(d, hex);
  if (std::memcmp(hex, m->data_sha256()->c_str(), 64) != 0)
    return fail(err, Status::kCorrupt, "weight checksum mismatch: file says %.64s, data hashes to %s",
                m->data_sha256()->c_str(), hex);
  return Status::kOk;
}

void Model::release() {
  if (!impl_) return;
  auto* impl = const_cast<ModelImpl*>(impl_);  // lives in the caller's model memory
  if (const DeviceHooks* dev = device_hooks(impl->backend))
    if (impl->weights) dev->release_weights(impl->weights);
  impl->weights = nullptr;
  for (int i = 0; i < 2; ++i)
    if (impl->locked_bytes[i]) munlock(impl->locked[i], impl->locked_bytes[i]);
  impl_ = nullptr;
}

void prefault_read(const void* p, size_t n) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const volatile unsigned char* b = static_cast<const unsigned char*>(p);
  unsigned char sum = 0;
  for (size_t i = 0; i < n; i += page) sum = static_cast<unsigned char>(sum + b[i]);
  if (n) sum = static_cast<unsigned char>(sum + b[n - 1]);
  (void)sum;
}

Status lock_pages(const void* p, size_t n, const char* what, Error* err) {
  if (n == 0 || mlock(p, n) == 0) return Status::kOk;
  int e = errno;
  rlimit lim{};
  getrlimit(RLIMIT_MEMLOCK, &lim);
  if (e == ENOMEM || e == EPERM) {  // over the limit: raise it where this process may
    rlimit more = lim;
    more.rlim_cur = more.rlim_max = RLIM_INFINITY;
    if (setrlimit(RLIMIT_MEMLOCK, &more) == 0) {
      if (mlock(p, n) == 0) return Status::kOk;
      e = errno;
    }
  }
  return fail(err, Status::kOutOfMemory,
              "cannot lock %s in memory (%zu bytes; RLIMIT_MEMLOCK %llu bytes, and this process may not raise it): "
              "raise it (ulimit -l, or CAP_IPC_LOCK), or leave lock_memory off (%s)",
              what, n, static_cast<unsigned long long>(lim.rlim_cur), std::strerror(e));
}

ModelInfo Model::info() const { return impl_ ? impl_->info : ModelInfo{}; }

}  // namespace rill
