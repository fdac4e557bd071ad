// Allocating helpers around the core API: mapping a file, owning model memory and session arenas.
// These are the only rill calls that allocate or do I/O. Use them at load time, never in a loop
// that must not allocate.
#pragma once

#include <atomic>

#include "rill/rill.hpp"

namespace rill {

// A read-only mapping of a whole file (page-aligned, so kAlign-aligned).
class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  static Status open(const char* path, MappedFile* out, Error* err = nullptr);
  const void* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

// kAlign-aligned heap block.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  ~AlignedBuffer();
  AlignedBuffer(AlignedBuffer&& o) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  static Status allocate(size_t bytes, AlignedBuffer* out);
  void* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

// A model opened from a file: owns the mapping and the model memory.
class LoadedModel {
 public:
  LoadedModel() = default;
  ~LoadedModel() { model_.release(); }  // a device backend's weights go with it
  LoadedModel(LoadedModel&& o) noexcept { *this = static_cast<LoadedModel&&>(o); }
  LoadedModel& operator=(LoadedModel&& o) noexcept;
  LoadedModel(const LoadedModel&) = delete;
  LoadedModel& operator=(const LoadedModel&) = delete;
  static Status open(const char* path, const ModelOptions& opts, LoadedModel* out, Error* err = nullptr);
  const Model& model() const { return model_; }
  const MappedFile& file() const { return file_; }

 private:
  MappedFile file_;
  AlignedBuffer mem_;
  Model model_;
};

// Worker threads for SessionOptions::pool: a ParallelFor over pthreadpool. Creating it allocates;
// stepping with it does not. threads() == 1 means no workers.
//
// It never makes a step wait for another session's work: a product that finds the pool busy (another
// thread is stepping with it at that moment) runs all its slices on the calling thread instead of
// queueing behind it; results are the same. So pthreadpool's own lock is only ever taken uncontended.
// A step with the pool still waits for its own slices on the pool's workers: in a loop with a hard
// deadline, give each stepping thread its own pool, or none.
// How a pool's worker threads run. Workers are created by a helper thread set up with these, so they
// inherit exactly them. With the defaults they inherit the creating thread's policy, priority and CPU
// affinity (Linux threads inherit all three): a real-time thread that creates a pool gets real-time
// workers, which is rarely what it wants.
struct PoolOptions {
  size_t threads = 1;          // workers including the caller's share (1: no workers)
  uint64_t cpu_mask = 0;       // CPUs 0..63 the workers may run on; 0: the creating thread's set
  int32_t sched_policy = -1;   // -1: the creating thread's; else SCHED_OTHER, SCHED_FIFO or SCHED_RR
  int32_t sched_priority = 0;  // 1..99 for SCHED_FIFO / SCHED_RR, else 0
};

class ThreadPool : public ParallelFor {
 public:
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  // kOutOfMemory if the threads could not be created; kNoBackend (and null) if this build has no
  // thread support and threads > 1.
  static Status create(size_t threads, ThreadPool** out);
  // As above, with the workers' CPU set and scheduling. kInvalidArgument for a policy or priority out of
  // range or a mask with no CPU of this machine; kUnsupported if the system refused them (a real-time
  // policy without the privilege), with the reason in err.
  static Status create(const PoolOptions& opts, ThreadPool** out, Error* err = nullptr);
  static void destroy(ThreadPool* p) { delete p; }
  size_t threads() const;
  void* handle() const { return handle_; }  // pthreadpool_t

 private:
  friend struct ThreadPoolAccess;
  ThreadPool() = default;
  void* handle_ = nullptr;
  mutable std::atomic<bool> busy_{false};  // a run() is inside pthreadpool
};

// A session that owns its arena.
class OwnedSession {
 public:
  static Status create(const Model& model, const SessionOptions& opts, OwnedSession* out, Error* err = nullptr);
  Session& session() { return session_; }
  size_t arena_bytes() const { return arena_.size(); }

 private:
  AlignedBuffer arena_;
  Session session_;
};

// A batch that owns its arena.
class OwnedBatch {
 public:
  static Status create(const Model& model, const BatchOptions& opts, OwnedBatch* out, Error* err = nullptr);
  Batch& get() { return batch_; }

 private:
  AlignedBuffer arena_;
  Batch batch_;
};

}  // namespace rill
