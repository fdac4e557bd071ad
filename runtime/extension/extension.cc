// Allocating helpers: file mapping and owned buffers.
#include "rill/extension.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "core/model_impl.h"
#if defined(RILL_HAVE_PTHREADPOOL)
#include <pthreadpool.h>
#endif

namespace rill {

MappedFile::~MappedFile() {
  if (data_) munmap(data_, size_);
}
MappedFile::MappedFile(MappedFile&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr, o.size_ = 0; }
MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  std::swap(data_, o.data_);
  std::swap(size_, o.size_);
  return *this;
}

Status MappedFile::open(const char* path, MappedFile* out, Error* err) {
  if (!path || !out) return fail(err, Status::kInvalidArgument, "path or out is null");
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(err, Status::kIo, "cannot open %s: %s", path, std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(err, Status::kIo, "%s is not a regular file", path);
  }
  if (st.st_size == 0) {
    ::close(fd);
    return fail(err, Status::kTruncated, "%s is empty", path);
  }
  void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return fail(err, Status::kIo, "cannot map %s: %s", path, std::strerror(errno));
  MappedFile m;
  m.data_ = p;
  m.size_ = static_cast<size_t>(st.st_size);
  *out = std::move(m);
  return Status::kOk;
}

AlignedBuffer::~AlignedBuffer() { std::free(data_); }
AlignedBuffer::AlignedBuffer(AlignedBuffer&& o) noexcept : data_(o.data_), size_(o.size_) {
  o.data_ = nullptr, o.size_ = 0;
}
AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& o) noexcept {
  std::swap(data_, o.data_);
  std::swap(size_, o.size_);
  return *this;
}

Status AlignedBuffer::allocate(size_t bytes, AlignedBuffer* out) {
  void* p = nullptr;
  if (posix_memalign(&p, kAlign, bytes ? align_up(bytes, kAlign) : kAlign) != 0) return Status::kOutOfMemory;
  std::memset(p, 0, bytes);
  AlignedBuffer b;
  b.data_ = p;
  b.size_ = bytes;
  *out = std::move(b);
  return Status::kOk;
}

ThreadPool::~ThreadPool() {
#if defined(RILL_HAVE_PTHREADPOOL)
  if (handle_) pthreadpool_destroy(static_cast<pthreadpool_t>(handle_));
#endif
}

#if defined(RILL_HAVE_PTHREADPOOL)
struct ThreadPoolAccess {
  // ParallelFor::run over pthreadpool: task(ctx, i) for i in [0, n), the calling thread taking part. A
  // pool already in use by another thread is not waited for: the caller runs every task itself.
  static void run(const ParallelFor* self, ParallelFor::Task task, void* ctx, size_t n) {
    const auto* pool = static_cast<const ThreadPool*>(self);
    if (pool->busy_.exchange(true, std::memory_order_acquire)) {
      for (size_t i = 0; i < n; ++i) task(ctx, i);
      return;
    }
    pthreadpool_parallelize_1d(static_cast<pthreadpool_t>(pool->handle_), task, ctx, n, 0);
    pool->busy_.store(false, std::memory_order_release);
  }
};
#endif

Status ThreadPool::create(size_t threads, ThreadPool** out) {
  PoolOptions o;
  o.threads = threads;
  return create(o, out);
}

namespace {
// The helper thread that creates the workers, so they inherit its (requested) policy and affinity.
struct PoolMaker {
  size_t threads;
  void* handle = nullptr;
};
void* make_pool(void* arg) {
  auto* m = static_cast<PoolMaker*>(arg);
#if defined(RILL_HAVE_PTHREADPOOL)
  m->handle = pthreadpool_create(m->threads);
#endif
  return nullptr;
}
}  // namespace

Status ThreadPool::create(const PoolOptions& o, ThreadPool** out, Error* err) {
  if (!out) return fail(err, Status::kInvalidArgument, "out is null");
  *out = nullptr;
  if (o.threads == 0) return fail(err, Status::kInvalidArgument, "a pool of 0 threads");
  const bool fifo_rr = o.sched_policy == SCHED_FIFO || o.sched_policy == SCHED_RR;
  if (o.sched_policy != -1 && o.sched_policy != SCHED_OTHER && !fifo_rr)
    return fail(err, Status::kInvalidArgument, "sched_policy %d is not -1, SCHED_OTHER, SCHED_FIFO or SCHED_RR",
                o.sched_policy);
  if (fifo_rr ? (o.sched_priority < sched_get_priority_min(o.sched_policy) ||
                 o.sched_priority > sched_get_priority_max(o.sched_policy))
              : o.sched_priority != 0)
    return fail(err, Status::kInvalidArgument, "sched_priority %d is out of range for policy %d", o.sched_priority,
                o.sched_policy);
#if defined(RILL_HAVE_PTHREADPOOL)
  auto* p = new (std::nothrow) ThreadPool();
  if (!p) return fail(err, Status::kOutOfMemory, "cannot allocate a thread pool");
  if (o.threads > 1) {
    PoolMaker maker{o.threads};
    if (o.cpu_mask == 0 && o.sched_policy == -1) {
      make_pool(&maker);  // the workers inherit this thread's settings
    } else {
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      int rc = 0;
      if (o.cpu_mask) {
        cpu_set_t set;
        CPU_ZERO(&set);
        for (int c = 0; c < 64; ++c)
          if (o.cpu_mask >> c & 1) CPU_SET(c, &set);
        rc = pthread_attr_setaffinity_np(&attr, sizeof set, &set);
      }
      if (rc == 0 && o.sched_policy != -1) {
        sched_param sp{};
        sp.sched_priority = o.sched_priority;
        rc = pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
        if (rc == 0) rc = pthread_attr_setschedpolicy(&attr, o.sched_policy);
        if (rc == 0) rc = pthread_attr_setschedparam(&attr, &sp);
      }
      pthread_t helper;
      if (rc == 0) rc = pthread_create(&helper, &attr, make_pool, &maker);
      pthread_attr_destroy(&attr);
      if (rc != 0) {
        delete p;
        if (rc == EPERM)
          return fail(err, Status::kUnsupported, "the system refused scheduling policy %d priority %d (EPERM: it "
                      "needs CAP_SYS_NICE or an RLIMIT_RTPRIO that allows it)", o.sched_policy, o.sched_priority);
        if (rc == EINVAL)
          return fail(err, Status::kInvalidArgument, "cpu_mask 0x%llx names no CPU this process may use",
                      static_cast<unsigned long long>(o.cpu_mask));
        return fail(err, Status::kOutOfMemory, "cannot create the pool's helper thread (error %d)", rc);
      }
      pthread_join(helper, nullptr);
    }
    if (!(p->handle_ = maker.handle)) {
      delete p;
      return fail(err, Status::kOutOfMemory, "cannot create %zu pool threads", o.threads);
    }
    p->run = ThreadPoolAccess::run;
    p->n_threads = pthreadpool_get_threads_count(static_cast<pthreadpool_t>(p->handle_));
  }
  *out = p;
  return Status::kOk;
#else
  if (o.threads > 1) return fail(err, Status::kNoBackend, "this build has no thread pool (pthreadpool)");
  auto* p = new (std::nothrow) ThreadPool();
  if (!p) return fail(err, Status::kOutOfMemory, "cannot allocate a thread pool");
  *out = p;
  return Status::kOk;
#endif
}

size_t ThreadPool::threads() const {
#if defined(RILL_HAVE_PTHREADPOOL)
  return handle_ ? pthreadpool_get_threads_count(static_cast<pthreadpool_t>(handle_)) : 1;
#else
  return 1;
#endif
}

LoadedModel& LoadedModel::operator=(LoadedModel&& o) noexcept {
  if (this != &o) {
    model_.release();
    file_ = static_cast<MappedFile&&>(o.file_);
    mem_ = static_cast<AlignedBuffer&&>(o.mem_);
    model_ = o.model_;
    o.model_ = Model{};
  }
  return *this;
}

Status LoadedModel::open(const char* path, const ModelOptions& opts, LoadedModel* out, Error* err) {
  if (!out) return fail(err, Status::kInvalidArgument, "out is null");
  Status s = MappedFile::open(path, &out->file_, err);
  if (s != Status::kOk) return s;
  size_t bytes = 0;
  if ((s = Model::footprint(out->file_.data(), out->file_.size(), &bytes, err)) != Status::kOk) return s;
  if ((s = AlignedBuffer::allocate(bytes, &out->mem_)) != Status::kOk)
    return fail(err, s, "cannot allocate %zu bytes of model memory", bytes);
  return Model::init(out->file_.data(), out->file_.size(), opts, out->mem_.data(), out->mem_.size(), &out->model_,
                     err);
}

Status OwnedSession::create(const Model& model, const SessionOptions& opts, OwnedSession* out, Error* err) {
  if (!out) return fail(err, Status::kInvalidArgument, "out is null");
  size_t bytes = 0;
  Status s = Session::footprint(model, opts, &bytes);
  if (s != Status::kOk) return fail(err, s, "model is not initialised");
  if ((s = AlignedBuffer::allocate(bytes, &out->arena_)) != Status::kOk)
    return fail(err, s, "cannot allocate a %zu-byte session arena", bytes);
  return Session::init(model, opts, out->arena_.data(), out->arena_.size(), &out->session_, err);
}

Status OwnedBatch::create(const Model& model, const BatchOptions& opts, OwnedBatch* out, Error* err) {
  if (!out) return fail(err, Status::kInvalidArgument, "out is null");
  size_t bytes = 0;
  Status s = Batch::footprint(model, opts, &bytes);
  if (s != Status::kOk) return fail(err, s, "model is not initialised, or max_streams is out of range");
  if ((s = AlignedBuffer::allocate(bytes, &out->arena_)) != Status::kOk)
    return fail(err, s, "cannot allocate a %zu-byte batch arena", bytes);
  return Batch::init(model, opts, out->arena_.data(), out->arena_.size(), &out->batch_, err);
}

}  // namespace rill
