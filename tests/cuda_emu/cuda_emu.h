// cuda_emu: a CPU emulation of the parts of CUDA rill's backend uses, for tests only. It lets
// runtime/kernels/cuda/backend_cuda.cu compile as C++ with g++ and run its kernels on the CPU, so every
// CUDA kernel and the whole device path run in CI on machines without a GPU.
//
// Header-only: the one translation unit that defines CUDA_EMU_IMPLEMENTATION before including it holds
// the implementation (the emulated backend's). cuda_runtime.h and cuda_fp16.h in this folder include it,
// so a .cu file's own includes resolve here when this folder comes first on the include path.
//
// Kernels
//   - One fiber per CUDA thread, with a context switch of its own (x86-64, AArch64; ucontext elsewhere),
//     so a warp reduction costs a few ns per switch, not glibc swapcontext's microsecond.
//   - The blocks of a grid run one after another; the threads of a block run in forward or reverse order
//     (set_thread_order / CUDA_EMU_ORDER=reverse): a missing barrier often shows in one order only.
//   - __syncthreads is a counting barrier over the block's threads that have not returned (as on sm_70+).
//   - __shfl_*_sync exchange among the 32 lanes of one warp, when all 32 wait at the same call site.
//   - Shared memory (RILL_SHARED in the .cu) is per OS thread, filled with NaN bytes at each block's
//     start, and counted against 48 KiB together with the launch's dynamic bytes.
// It refuses loudly (a message naming the kernel, then abort) what a GPU would reject or leave
// undefined: blockDim over 1024 threads or zero, a grid of zero blocks or grid.y / grid.z over 65535,
// more than 48 KiB of shared memory, a shuffle some of whose lanes have returned or wait elsewhere, a
// shuffle mask other than all 32 lanes, and __syncthreads reached from two call sites of one block.
//
// Runtime
//   - Device memory is host memory from malloc, counted (cudaMalloc / cudaFree), filled with NaN bytes
//     when allocated, limited by set_memory_limit. Pinned memory likewise.
//   - Streams queue their work; it runs when the stream (or the device) is synchronized. Work on the
//     legacy default stream (stream 0) runs at once, after the blocking streams' queued work (the
//     legacy stream's implicit synchronization); non-blocking streams are not waited for.
//   - Stream capture (cudaStreamCaptureModeThreadLocal) records each launch, async copy and memset with
//     its argument values fixed at capture time; its memory is read at replay, as a CUDA graph does.
//     What CUDA forbids during a capture fails as CUDA fails it, with the same error, invalidating the
//     capture (and a line on stderr): an unsafe call (cudaMalloc, cudaFree, cudaHostAlloc, synchronous
//     copies and memsets, stream / device / event synchronization) from the capturing thread, and any
//     use of the legacy stream, from any thread, while a blocking stream is being captured.
//   - Counters for tests: kernel launches run, copies run, graph launches, and bytes the kernels
//     declared as weight reads (count_weight_bytes).
//   - Failure injection: the next N copies fail (a synchronous copy returns the error; a queued one
//     makes its stream's synchronize return it).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <tuple>
#include <type_traits>
#include <utility>

#define CUDA_EMU 1

// ---- the language

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict

// Everything CUDA names lives in a namespace of its own (brought in by the using-directive below), so
// a test program that also links the real CUDA runtime gets no clash of symbols or types.
namespace cuda_emu_rt {
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(8) uint2 {
  unsigned x, y;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(16) int4 {
  int x, y, z, w;
};

}  // namespace cuda_emu_rt
using namespace cuda_emu_rt;

namespace cuda_emu {

// The built-in variables of the thread running now (set by the scheduler before it resumes a thread).
struct Builtins {
  uint3 thread{0, 0, 0}, block{0, 0, 0};
  dim3 block_dim, grid_dim;
};
inline thread_local Builtins t_builtins;
void syncthreads(int line);
uint64_t shuffle(int line, unsigned mask, uint64_t bits, int kind, int arg, int width);
void shared_bytes(void* p, size_t bytes);
void* dynamic_shared();
void count_weight_bytes(uint64_t bytes);

enum ShuffleKind { kShflXor = 0, kShflDown = 1, kShflUp = 2, kShflIdx = 3 };
template <int Kind, class T>
T shfl_op(int line, unsigned mask, T v, int arg, int width = 32) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "a shuffled value is at most 64 bits");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof v);
  bits = shuffle(line, mask, bits, Kind, arg, width);
  T r;
  std::memcpy(&r, &bits, sizeof r);
  return r;
}

}  // namespace cuda_emu

#define threadIdx (static_cast<const uint3&>(::cuda_emu::t_builtins.thread))
#define blockIdx (static_cast<const uint3&>(::cuda_emu::t_builtins.block))
#define blockDim (static_cast<const dim3&>(::cuda_emu::t_builtins.block_dim))
#define gridDim (static_cast<const dim3&>(::cuda_emu::t_builtins.grid_dim))
#define __syncthreads() ::cuda_emu::syncthreads(__LINE__)
#define __shfl_xor_sync(...) ::cuda_emu::shfl_op<::cuda_emu::kShflXor>(__LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) ::cuda_emu::shfl_op<::cuda_emu::kShflDown>(__LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) ::cuda_emu::shfl_op<::cuda_emu::kShflUp>(__LINE__, __VA_ARGS__)
#define __shfl_sync(...) ::cuda_emu::shfl_op<::cuda_emu::kShflIdx>(__LINE__, __VA_ARGS__)

namespace cuda_emu {
struct Stream;
struct Graph;
struct GraphExec;
struct Event;
}  // namespace cuda_emu
namespace cuda_emu_rt {
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, 4);
  return u;
}

// ---- half precision (cuda_fp16.h)

struct __half {
  unsigned short bits;
};
inline __half __ushort_as_half(unsigned short b) { return __half{b}; }
inline unsigned short __half_as_ushort(__half h) { return h.bits; }
inline float __half2float(__half h) {
  const uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000) << 16, e = (h.bits >> 10) & 0x1F, m = h.bits & 0x3FF;
  uint32_t u;
  if (e == 0x1F) u = sign | 0x7F800000u | (m << 13);  // inf, NaN
  else if (e) u = sign | ((e + 112) << 23) | (m << 13);
  else if (!m) u = sign;
  else {  // subnormal: m * 2^-24
    const float f = static_cast<float>(m) * 5.9604644775390625e-8f;
    std::memcpy(&u, &f, 4);
    u |= sign;
  }
  return __uint_as_float(u);
}
// Round to nearest even, as __float2half_rn.
inline __half __float2half_rn(float f) {
  const uint32_t x = __float_as_uint(f), sign = (x >> 16) & 0x8000, ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) return __half{static_cast<unsigned short>(sign | 0x7C00 | (ax > 0x7F800000u ? 0x200 : 0))};
  if (ax >= 0x477FF000u) return __half{static_cast<unsigned short>(sign | 0x7C00)};  // >= 65520: inf
  if (ax < 0x38800000u) {  // below 2^-14: a subnormal, in units of 2^-24
    const float a = __uint_as_float(ax) * 16777216.f;
    return __half{static_cast<unsigned short>(sign | static_cast<uint32_t>(std::nearbyint(a)))};
  }
  uint32_t h = (((ax >> 23) - 112) << 10) | ((ax & 0x7FFFFF) >> 13);
  const uint32_t rem = ax & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
  return __half{static_cast<unsigned short>(sign | h)};
}

// ---- the runtime API

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorLaunchFailure = 719,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureUnmatched = 903,
  cudaErrorStreamCaptureImplicit = 906,
  cudaErrorUnknown = 999,
};
using cudaError = cudaError_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2
};
enum cudaStreamCaptureStatus { cudaStreamCaptureStatusNone = 0, cudaStreamCaptureStatusActive = 1, cudaStreamCaptureStatusInvalidated = 2 };
constexpr unsigned cudaStreamDefault = 0, cudaStreamNonBlocking = 1, cudaHostAllocDefault = 0;

using cudaStream_t = cuda_emu::Stream*;
using cudaGraph_t = cuda_emu::Graph*;
using cudaGraphExec_t = cuda_emu::GraphExec*;
using cudaGraphNode_t = void*;
using cudaEvent_t = cuda_emu::Event*;

struct cudaDeviceProp {
  char name[256];
  int major, minor;
  int integrated;
  int multiProcessorCount;
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  int maxThreadsPerBlock;
  int warpSize;
};

cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d);
cudaError_t cudaRuntimeGetVersion(int* v);
cudaError_t cudaDriverGetVersion(int* v);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);
cudaError_t cudaMalloc(void** p, size_t bytes);
template <class T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaFree(void* p);
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned flags);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemGetInfo(size_t* free_b, size_t* total_b);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemset(void* dst, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t s = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g);
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long flags = 0);
cudaError_t cudaGraphUpload(cudaGraphExec_t e, cudaStream_t s);
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s);
cudaError_t cudaGraphGetNodes(cudaGraph_t g, cudaGraphNode_t* nodes, size_t* n);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e);
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b);
cudaError_t cudaEventDestroy(cudaEvent_t e);

}  // namespace cuda_emu_rt

// ---- kernel launches: RILL_LAUNCH(kernel, grid, block, smem, stream)(args...) in the .cu

namespace cuda_emu {

constexpr size_t kMaxArgBytes = 256;
constexpr unsigned kMaxThreadsPerBlock = 1024, kMaxGridYZ = 65535;
constexpr size_t kMaxSharedBytes = 48 * 1024;

// One launch: the kernel's name and configuration, its arguments by value, and how to run one thread.
struct LaunchRecord {
  const char* name;
  dim3 grid, block;
  size_t smem;
  void (*run_thread)(const void* args);  // calls the kernel with a copy of the arguments
  alignas(16) unsigned char args[kMaxArgBytes];
};
// Queues the launch on stream s (runs it at once on the legacy stream, records it during a capture).
void submit(const LaunchRecord& r, cudaStream_t s);

template <class... P>
struct Launch {
  const char* name;
  void (*kernel)(P...);
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  void operator()(P... args) const {
    using Pack = std::tuple<void (*)(P...), std::decay_t<P>...>;
    static_assert(sizeof(Pack) <= kMaxArgBytes, "a kernel's arguments fit in a launch record");
    static_assert((std::is_trivially_copyable_v<std::decay_t<P>> && ...), "kernel arguments are copied as bytes");
    LaunchRecord r;
    r.name = name;
    r.grid = grid;
    r.block = block;
    r.smem = smem;
    r.run_thread = [](const void* a) {
      Pack p = *static_cast<const Pack*>(a);  // this thread's own copy of the arguments
      std::apply([](void (*k)(P...), auto... v) { k(v...); }, p);
    };
    new (r.args) Pack(kernel, args...);
    submit(r, stream);
  }
};
template <class... P>
Launch<P...> launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s) {
  return Launch<P...>{name, kernel, grid, block, smem, s};
}

// ---- controls and counters for tests

struct Counters {
  uint64_t launches = 0;        // kernel launches run (eager or replayed)
  uint64_t copies = 0;          // copies and memsets run
  uint64_t graph_launches = 0;  // cudaGraphLaunch calls run
  uint64_t weight_bytes = 0;    // count_weight_bytes totals
  uint64_t mallocs = 0, frees = 0;
  uint64_t capture_violations = 0;  // what CUDA forbids during a capture, attempted
};
Counters counters();
void reset_counters();
enum class Order { kForward, kReverse };
void set_thread_order(Order o);
Order thread_order();
void set_memory_limit(size_t bytes);  // device bytes cudaMalloc may hand out in all
void fail_next_copies(int n);         // the next n copies (sync or queued) fail with cudaErrorLaunchFailure

}  // namespace cuda_emu

// ======================================================================================================
// The implementation (in the one translation unit that defines CUDA_EMU_IMPLEMENTATION).
#if defined(CUDA_EMU_IMPLEMENTATION)

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CUDA_EMU_ASAN 1
#endif
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace cuda_emu {
namespace {

[[noreturn]] void refuse(const char* kernel, const char* fmt, ...) {
  std::fprintf(stderr, "cuda_emu: kernel %s: ", kernel ? kernel : "?");
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, " (a GPU would reject this or leave it undefined)\n");
  std::fflush(stderr);
  std::abort();
}

// ---- fibers

#if defined(__x86_64__)
// cuda_emu_switch(save, load): saves the callee-saved registers on this stack, stores the stack pointer
// in *save, and resumes the stack `load` points at (the FP control words are left alone: every fiber
// runs on the thread that launched the kernel, with its settings). A new fiber's stack is laid
// out so that the first switch to it "returns" into the trampoline, which calls entry(arg) from r13/r12.
asm(R"(
  .text
  .p2align 4
  .type cuda_emu_switch,@function
cuda_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cuda_emu_switch,.-cuda_emu_switch
  .type cuda_emu_trampoline,@function
cuda_emu_trampoline:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size cuda_emu_trampoline,.-cuda_emu_trampoline
)");
extern "C" void cuda_emu_switch(void** save, void* load);
extern "C" void cuda_emu_trampoline();
#endif

}  // namespace

enum class TState : uint8_t { kReady, kBarrier, kShuffle, kDone };

struct Thread {
  void* sp = nullptr;
  unsigned char* stack = nullptr;  // lowest usable byte (above the guard page)
  size_t stack_bytes = 0;
  size_t color = 0;  // bytes left unused at the top of the stack (below)
  uint3 tid{0, 0, 0};
  TState st = TState::kDone;
  int line = 0;
  unsigned mask = 0;
  int kind = 0, arg = 0, width = 32;
  uint64_t value = 0, result = 0;
  void* asan_fake = nullptr;
#if !defined(__x86_64__)
  ucontext_t ctx;
#endif
};

namespace {

struct SharedUse {
  void* p;
  size_t bytes;
};

struct Block {
  const LaunchRecord* rec = nullptr;
  uint3 bidx{0, 0, 0};
  dim3 bdim, gdim;
  Thread* threads = nullptr;
  unsigned n = 0;
  void* sched_sp = nullptr;
  const void* sched_bottom = nullptr;
  size_t sched_size = 0;
  void* sched_fake = nullptr;
  unsigned live = 0, at_barrier = 0;  // threads not returned; of them, waiting at __syncthreads
  unsigned warp_arrived[32] = {};     // lanes of each warp waiting at a shuffle
  SharedUse shared[64];
  unsigned n_shared = 0;
  size_t shared_total = 0;
#if !defined(__x86_64__)
  ucontext_t sched_ctx;
#endif
};

thread_local Block* t_block = nullptr;
thread_local Thread* t_cur = nullptr;

// Per OS thread: fiber stacks (mapped once, a guard page below each) and the dynamic shared memory.
struct FiberPool {
#if defined(CUDA_EMU_ASAN)
  static constexpr size_t kStack = 256 * 1024;
#else
  static constexpr size_t kStack = 64 * 1024;
#endif
  std::vector<Thread> threads;
  alignas(16) unsigned char dyn_shared[kMaxSharedBytes];
  Thread* get(unsigned n) {
    if (threads.size() < n) {
      const size_t old = threads.size();
      std::vector<Thread> grown(n);
      for (size_t i = 0; i < old; ++i) grown[i] = threads[i];
      threads.swap(grown);
      const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
      for (size_t i = old; i < n; ++i) {
        void* m = mmap(nullptr, kStack + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) refuse(nullptr, "cannot map a fiber stack");
        mprotect(m, page, PROT_NONE);
        threads[i].stack = static_cast<unsigned char*>(m) + page;
        threads[i].stack_bytes = kStack;
        threads[i].color = (i * 448) % 8192;
      }
    }
    return threads.data();
  }
  ~FiberPool() {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    for (Thread& t : threads) munmap(t.stack - page, t.stack_bytes + page);
  }
};
FiberPool& pool() {
  static thread_local FiberPool p;
  return p;
}

void fiber_main(Thread* t) {
  Block& b = *t_block;
#if defined(CUDA_EMU_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &b.sched_bottom, &b.sched_size);
#endif
  b.rec->run_thread(b.rec->args);
  t->st = TState::kDone;
#if defined(CUDA_EMU_ASAN)
  __sanitizer_start_switch_fiber(nullptr, b.sched_bottom, b.sched_size);
#endif
#if defined(__x86_64__)
  cuda_emu_switch(&t->sp, b.sched_sp);
#else
  setcontext(&b.sched_ctx);
#endif
  __builtin_unreachable();
}

#if !defined(__x86_64__)
thread_local Thread* t_starting = nullptr;
void fiber_entry_uc() { fiber_main(t_starting); }
#endif

void start_fiber(Thread* t) {
#if defined(CUDA_EMU_ASAN)
  // The frames that never returned last time (the entry's) left their red zones poisoned: clear the
  // top of the stack, where the new frames go.
  constexpr size_t kTop = 32 * 1024;
  ASAN_UNPOISON_MEMORY_REGION(t->stack + t->stack_bytes - kTop, kTop);
#endif
#if defined(__x86_64__)
  // Each fiber's stack top at its own offset: tops a page multiple apart would all fall in the same
  // cache sets, and every switch would miss.
  uintptr_t top = (reinterpret_cast<uintptr_t>(t->stack) + t->stack_bytes - t->color) & ~uintptr_t(15);
  uint64_t* x = reinterpret_cast<uint64_t*>(top - 16);  // the trampoline starts with rsp 16-aligned
  *--x = reinterpret_cast<uint64_t>(&cuda_emu_trampoline);  // ret
  *--x = 0;                                                  // rbp
  *--x = 0;                                                  // rbx
  *--x = reinterpret_cast<uint64_t>(t);                      // r12: the argument
  *--x = reinterpret_cast<uint64_t>(&fiber_main);            // r13: the entry
  *--x = 0;                                                  // r14
  *--x = 0;                                                  // r15
  t->sp = x;
#else
  getcontext(&t->ctx);
  t->ctx.uc_stack.ss_sp = t->stack;
  t->ctx.uc_stack.ss_size = t->stack_bytes;
  t->ctx.uc_link = nullptr;
  makecontext(&t->ctx, fiber_entry_uc, 0);
  t->sp = nullptr;
#endif
  t->st = TState::kReady;
}

// Scheduler -> thread t, until it blocks or returns.
void resume(Block& b, Thread* t) {
  t_cur = t;
  t_builtins.thread = t->tid;
#if defined(CUDA_EMU_ASAN)
  __sanitizer_start_switch_fiber(&b.sched_fake, t->stack, t->stack_bytes);
#endif
#if defined(__x86_64__)
  cuda_emu_switch(&b.sched_sp, t->sp);
#else
  if (!t->sp) {
    t->sp = t;
    t_starting = t;
  }
  swapcontext(&b.sched_ctx, &t->ctx);
#endif
#if defined(CUDA_EMU_ASAN)
  __sanitizer_finish_switch_fiber(b.sched_fake, nullptr, nullptr);
#endif
  t_cur = nullptr;
}

// Thread -> scheduler (the thread has set why it waits).
void block_here(Thread* t) {
  Block& b = *t_block;
#if defined(CUDA_EMU_ASAN)
  __sanitizer_start_switch_fiber(&t->asan_fake, b.sched_bottom, b.sched_size);
#endif
#if defined(__x86_64__)
  cuda_emu_switch(&t->sp, b.sched_sp);
#else
  swapcontext(&t->ctx, &b.sched_ctx);
#endif
#if defined(CUDA_EMU_ASAN)
  __sanitizer_finish_switch_fiber(t->asan_fake, &b.sched_bottom, &b.sched_size);
#endif
  t_cur = t;
}

std::atomic<int> g_order{-1};
std::atomic<uint64_t> g_launches{0}, g_copies{0}, g_graph_launches{0}, g_weight_bytes{0}, g_mallocs{0}, g_frees{0},
    g_violations{0};

bool reverse_order() {
  int o = g_order.load(std::memory_order_relaxed);
  if (o < 0) {
    const char* e = std::getenv("CUDA_EMU_ORDER");
    o = e && std::strcmp(e, "reverse") == 0 ? 1 : 0;
    g_order.store(o, std::memory_order_relaxed);
  }
  return o == 1;
}

// The 32 lanes of a warp all wait at one shuffle: each gets its source lane's value.
void release_warp(Block& b, Thread* lanes) {
  const char* name = b.rec->name;
  for (unsigned l = 1; l < 32; ++l) {
    const Thread& t = lanes[l];
    if (t.line != lanes[0].line || t.kind != lanes[0].kind || t.width != lanes[0].width)
      refuse(name, "block (%u,%u,%u): lanes of one warp wait at different shuffles (lines %d and %d)", b.bidx.x,
             b.bidx.y, b.bidx.z, lanes[0].line, t.line);
  }
  for (unsigned l = 0; l < 32; ++l)
    if (lanes[l].mask != 0xFFFFFFFFu) refuse(name, "a shuffle (line %d) with mask %#x: only full warps are emulated", lanes[l].line, lanes[l].mask);
  const int width = lanes[0].width;
  if (width < 1 || width > 32 || (width & (width - 1))) refuse(name, "a shuffle width of %d", width);
  for (unsigned l = 0; l < 32; ++l) {
      const int a = lanes[l].arg, seg = static_cast<int>(l) / width * width, in = static_cast<int>(l) % width;
      int src = static_cast<int>(l);
      switch (lanes[l].kind) {
        case kShflXor: src = (static_cast<int>(l) ^ a); if (src / width != static_cast<int>(l) / width) src = static_cast<int>(l); break;
        case kShflDown: src = in + a < width ? static_cast<int>(l) + a : static_cast<int>(l); break;
        case kShflUp: src = in >= a ? static_cast<int>(l) - a : static_cast<int>(l); break;
        default: src = seg + ((a % width) + width) % width; break;
      }
      lanes[l].result = lanes[src].value;
    }
    for (unsigned l = 0; l < 32; ++l) lanes[l].st = TState::kReady;
}

// Releases the warps whose 32 lanes all wait at one shuffle; refuses a shuffle that cannot complete.
bool resolve_shuffles(Block& b) {
  bool released = false;
  const char* name = b.rec->name;
  for (unsigned w0 = 0; w0 < b.n; w0 += 32) {
    Thread* lanes = b.threads + w0;
    const unsigned n = b.n - w0 < 32 ? b.n - w0 : 32;
    unsigned waiting = 0, at_line = 0;
    for (unsigned l = 0; l < n; ++l)
      if (lanes[l].st == TState::kShuffle) ++waiting, at_line = static_cast<unsigned>(lanes[l].line);
    if (!waiting) continue;
    if (n < 32) refuse(name, "a shuffle (line %u) in a warp of %u threads: blockDim.x = %u is not a multiple of 32", at_line, n, b.bdim.x);
    for (unsigned l = 0; l < 32; ++l) {
      const Thread& t = lanes[l];
      if (t.st == TState::kDone)
        refuse(name, "block (%u,%u,%u): lane %u of warp %u has returned while lanes wait at the shuffle on line %u",
               b.bidx.x, b.bidx.y, b.bidx.z, l, w0 / 32, at_line);
      if (t.st == TState::kBarrier)
        refuse(name, "block (%u,%u,%u), warp %u: lanes wait at a shuffle (line %u) and at __syncthreads (line %d)",
               b.bidx.x, b.bidx.y, b.bidx.z, w0 / 32, at_line, t.line);
    }
    release_warp(b, lanes);  // which checks the lanes wait at one shuffle
    released = true;
  }
  return released;
}

// Releases the block's barrier once every thread that has not returned waits at it.
void resolve_barrier(Block& b) {
  int line = -1;
  for (unsigned i = 0; i < b.n; ++i) {
    const Thread& t = b.threads[i];
    if (t.st == TState::kDone) continue;
    if (t.st != TState::kBarrier) refuse(b.rec->name, "thread %u neither returned nor waits at __syncthreads", i);
    if (line < 0) line = t.line;
    else if (t.line != line)
      refuse(b.rec->name, "block (%u,%u,%u): __syncthreads reached from two call sites (lines %d and %d)", b.bidx.x,
             b.bidx.y, b.bidx.z, line, t.line);
  }
  for (unsigned i = 0; i < b.n; ++i)
    if (b.threads[i].st == TState::kBarrier) b.threads[i].st = TState::kReady;
}

void run_grid(const LaunchRecord& r) {
  const dim3 g = r.grid, bd = r.block;
  const uint64_t threads = uint64_t(bd.x) * bd.y * bd.z, blocks = uint64_t(g.x) * g.y * g.z;
  if (threads == 0 || threads > kMaxThreadsPerBlock)
    refuse(r.name, "blockDim (%u,%u,%u) = %llu threads (1 to %u allowed)", bd.x, bd.y, bd.z,
           static_cast<unsigned long long>(threads), kMaxThreadsPerBlock);
  if (bd.z > 64) refuse(r.name, "blockDim.z = %u (at most 64)", bd.z);
  if (blocks == 0) refuse(r.name, "a grid of zero blocks (%u,%u,%u)", g.x, g.y, g.z);
  if (g.y > kMaxGridYZ || g.z > kMaxGridYZ) refuse(r.name, "gridDim (%u,%u,%u): y and z are at most %u", g.x, g.y, g.z, kMaxGridYZ);
  if (r.smem > kMaxSharedBytes) refuse(r.name, "%zu bytes of dynamic shared memory (48 KiB at most)", r.smem);
  g_launches.fetch_add(1, std::memory_order_relaxed);
  if (t_block) refuse(r.name, "launched from inside a kernel");
  FiberPool& fp = pool();
  Block b;
  b.rec = &r;
  b.bdim = bd;
  b.gdim = g;
  b.n = static_cast<unsigned>(threads);
  b.threads = fp.get(b.n);
  t_block = &b;
  t_builtins.block_dim = bd;
  t_builtins.grid_dim = g;
  const bool rev = reverse_order();
  for (uint64_t k = 0; k < blocks; ++k) {
    const uint64_t lin = rev ? blocks - 1 - k : k;
    b.bidx = uint3{static_cast<unsigned>(lin % g.x), static_cast<unsigned>(lin / g.x % g.y),
                   static_cast<unsigned>(lin / (uint64_t(g.x) * g.y))};
    t_builtins.block = b.bidx;
    b.n_shared = 0;
    b.shared_total = r.smem;
    std::memset(fp.dyn_shared, 0xFF, r.smem);
    for (unsigned i = 0; i < b.n; ++i) {
      Thread* t = &b.threads[i];
      t->tid = uint3{i % bd.x, i / bd.x % bd.y, i / (bd.x * bd.y)};
      start_fiber(t);
    }
    b.live = b.n;
    b.at_barrier = 0;
    std::memset(b.warp_arrived, 0, sizeof b.warp_arrived);
    const bool full_warps = b.n % 32 == 0;
    while (b.live) {
      bool ran = false;
      for (unsigned j = 0; j < b.n; ++j) {
        const unsigned i = rev ? b.n - 1 - j : j;
        Thread* t = &b.threads[i];
        if (t->st != TState::kReady) continue;
        ran = true;
        resume(b, t);
        // Release a warp or the block as soon as the last thread it waits for arrives.
        if (t->st == TState::kShuffle) {
          if (full_warps && ++b.warp_arrived[i / 32] == 32) {
            b.warp_arrived[i / 32] = 0;
            release_warp(b, b.threads + i / 32 * 32);
          }
          continue;
        }
        if (t->st == TState::kDone) --b.live;
        else ++b.at_barrier;
        if (b.at_barrier && b.at_barrier == b.live) {
          resolve_barrier(b);  // checks the call sites, releases
          b.at_barrier = 0;
        }
      }
      // Nothing could run: the lanes or threads something waits for have returned or wait elsewhere.
      if (!ran && b.live && !resolve_shuffles(b)) {
        resolve_barrier(b);
        b.at_barrier = 0;
      }
    }
  }
  t_block = nullptr;
}

}  // namespace

// ---- streams, graphs, events

struct Work {
  enum Kind : uint8_t { kLaunch, kCopy, kMemset, kGraph, kEvent } kind;
  void* dst = nullptr;
  const void* src = nullptr;
  size_t bytes = 0;
  int value = 0;
  GraphExec* exec = nullptr;
  Event* event = nullptr;
  LaunchRecord launch;
};

struct Stream {
  bool nonblocking = false;
  std::vector<Work> queue;
  cudaError_t error = cudaSuccess;  // from queued work, returned by the next synchronize
  bool capturing = false, invalidated = false;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id capture_thread;
  Graph* graph = nullptr;
};
struct Graph {
  std::vector<Work> nodes;
};
struct GraphExec {
  std::vector<Work> nodes;
};
struct Event {
  double ms = 0;
};

namespace {

std::mutex g_mu;  // one API call at a time (kernels run on the calling thread, holding it)
std::vector<Stream*> g_streams;
// Emulated memory, device or pinned: blocks of host memory, NaN bytes when allocated (what a kernel
// reads, something must have written), counted, within a limit (the device's: set_memory_limit).
struct Pool {
  std::map<void*, size_t> blocks;
  size_t used = 0, limit = SIZE_MAX;
  cudaError_t allocate(void** p, size_t bytes, const char* what);
  cudaError_t release(void* p, const char* what);
};
Pool g_device{{}, 0, size_t(8) << 30}, g_pinned;
int g_fail_copies = 0;
thread_local cudaError_t t_last_error = cudaSuccess;
thread_local int t_device = 0;

cudaError_t set_error(cudaError_t e) {
  if (e != cudaSuccess) t_last_error = e;
  return e;
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void run_graph(const GraphExec& e, Stream* s);

// Runs one piece of work; a copy that fails (injected) sets the error of stream s (or returns it).
cudaError_t run_work(const Work& w, Stream* s) {
  switch (w.kind) {
    case Work::kLaunch: run_grid(w.launch); return cudaSuccess;
    case Work::kCopy:
    case Work::kMemset:
      g_copies.fetch_add(1, std::memory_order_relaxed);
      if (g_fail_copies > 0) {
        --g_fail_copies;
        if (s && s->error == cudaSuccess) s->error = cudaErrorLaunchFailure;
        return cudaErrorLaunchFailure;
      }
      if (w.kind == Work::kCopy) std::memmove(w.dst, w.src, w.bytes);
      else std::memset(w.dst, w.value, w.bytes);
      return cudaSuccess;
    case Work::kGraph: run_graph(*w.exec, s); return cudaSuccess;
    case Work::kEvent: w.event->ms = now_ms(); return cudaSuccess;
  }
  return cudaSuccess;
}

void run_graph(const GraphExec& e, Stream* s) {
  g_graph_launches.fetch_add(1, std::memory_order_relaxed);
  for (const Work& w : e.nodes) run_work(w, s);
}

void drain(Stream* s) {
  for (size_t i = 0; i < s->queue.size(); ++i) run_work(s->queue[i], s);
  s->queue.clear();
}

void violation(Stream* victim, cudaError_t e, const char* what) {
  g_violations.fetch_add(1, std::memory_order_relaxed);
  std::fprintf(stderr, "cuda_emu: %s during a stream capture: %s (the capture is invalidated)\n", what,
               cudaGetErrorName(e));
  if (victim) victim->invalidated = true;
}

// ThreadLocal / Global capture: the capturing thread may not make a potentially unsafe call.
cudaError_t unsafe_call(const char* what) {
  for (Stream* s : g_streams)
    if (s->capturing && s->mode != cudaStreamCaptureModeRelaxed && s->capture_thread == std::this_thread::get_id()) {
      violation(s, cudaErrorStreamCaptureUnsupported, what);
      return cudaErrorStreamCaptureUnsupported;
    }
  return cudaSuccess;
}

cudaError_t Pool::allocate(void** p, size_t bytes, const char* what) {
  *p = nullptr;
  if (cudaError_t e = unsafe_call(what)) return e;
  if (bytes > limit - used) return cudaErrorMemoryAllocation;
  void* m = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!m) return cudaErrorMemoryAllocation;
  std::memset(m, 0xFF, bytes);
  blocks[m] = bytes;
  used += bytes;
  g_mallocs.fetch_add(1);
  *p = m;
  return cudaSuccess;
}
cudaError_t Pool::release(void* p, const char* what) {
  if (!p) return cudaSuccess;
  if (cudaError_t e = unsafe_call(what)) return e;
  auto it = blocks.find(p);
  if (it == blocks.end()) return cudaErrorInvalidValue;
  used -= it->second;
  blocks.erase(it);
  std::free(p);
  g_frees.fetch_add(1);
  return cudaSuccess;
}

// The legacy stream synchronizes with every blocking stream: while one is being captured, any use of it
// (from any thread) is an error that invalidates that capture.
cudaError_t legacy_use(const char* what) {
  cudaError_t e = cudaSuccess;
  for (Stream* s : g_streams)
    if (s->capturing && !s->nonblocking) {
      violation(s, cudaErrorStreamCaptureImplicit, what);
      e = cudaErrorStreamCaptureImplicit;
    }
  if (e != cudaSuccess) return e;
  for (Stream* s : g_streams)
    if (!s->nonblocking) drain(s);
  return cudaSuccess;
}

bool known(Stream* s) {
  for (Stream* k : g_streams)
    if (k == s) return true;
  return false;
}

// Queues w on s: at once on the legacy stream, into the graph during a capture, else into s's queue.
cudaError_t submit_work(Work& w, Stream* s, const char* what) {
  if (!s) {
    if (cudaError_t e = legacy_use(what)) return e;
    return run_work(w, nullptr);
  }
  if (!known(s)) return cudaErrorInvalidResourceHandle;
  if (s->capturing) {
    s->graph->nodes.push_back(w);
    return cudaSuccess;
  }
  s->queue.push_back(w);
  return cudaSuccess;
}

}  // namespace

// ---- kernel-side entry points

Thread* current() {
  if (!t_cur) refuse(nullptr, "__syncthreads or a shuffle called outside a kernel");
  return t_cur;
}

void syncthreads(int line) {
  Thread* t = current();
  t->st = TState::kBarrier;
  t->line = line;
  block_here(t);
}

uint64_t shuffle(int line, unsigned mask, uint64_t bits, int kind, int arg, int width) {
  Thread* t = current();
  t->st = TState::kShuffle;
  t->line = line;
  t->mask = mask;
  t->value = bits;
  t->kind = kind;
  t->arg = arg;
  t->width = width;
  block_here(t);
  return t->result;
}

void shared_bytes(void* p, size_t bytes) {
  Block& b = *t_block;
  for (unsigned i = 0; i < b.n_shared; ++i)
    if (b.shared[i].p == p) return;
  if (b.n_shared == 64) refuse(b.rec->name, "more than 64 shared arrays");
  b.shared[b.n_shared++] = SharedUse{p, bytes};
  b.shared_total += bytes;
  if (b.shared_total > kMaxSharedBytes)
    refuse(b.rec->name, "%zu bytes of shared memory, static and dynamic (48 KiB at most)", b.shared_total);
  std::memset(p, 0xFF, bytes);  // what a block reads of it, it must have written
}

void* dynamic_shared() { return pool().dyn_shared; }

void count_weight_bytes(uint64_t bytes) { g_weight_bytes.fetch_add(bytes, std::memory_order_relaxed); }

void submit(const LaunchRecord& r, cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_mu);
  Work w{};
  w.kind = Work::kLaunch;
  w.launch = r;
  set_error(submit_work(w, s, "a kernel launch on the legacy stream"));
}

Counters counters() {
  Counters c;
  c.launches = g_launches.load();
  c.copies = g_copies.load();
  c.graph_launches = g_graph_launches.load();
  c.weight_bytes = g_weight_bytes.load();
  c.mallocs = g_mallocs.load();
  c.frees = g_frees.load();
  c.capture_violations = g_violations.load();
  return c;
}
void reset_counters() {
  g_launches = 0, g_copies = 0, g_graph_launches = 0, g_weight_bytes = 0, g_violations = 0;
}
void set_thread_order(Order o) { g_order.store(o == Order::kReverse ? 1 : 0); }
Order thread_order() { return reverse_order() ? Order::kReverse : Order::kForward; }
void set_memory_limit(size_t bytes) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_device.limit = bytes;
}
void fail_next_copies(int n) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_fail_copies = n;
}

}  // namespace cuda_emu

// ---- the runtime API

using cuda_emu::g_mu;
using cuda_emu::set_error;
using cuda_emu::Work;

namespace cuda_emu_rt {

cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return set_error(d == 0 ? (cuda_emu::t_device = 0, cudaSuccess) : cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int* d) {
  *d = cuda_emu::t_device;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d != 0) return set_error(cudaErrorInvalidDevice);
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof p->name, "cuda_emu (CPU emulation)");
  p->major = 8, p->minor = 7, p->integrated = 0, p->multiProcessorCount = 16;
  p->totalGlobalMem = cuda_emu::g_device.limit, p->sharedMemPerBlock = cuda_emu::kMaxSharedBytes;
  p->maxThreadsPerBlock = 1024, p->warpSize = 32;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = cuda_emu::t_last_error;
  cuda_emu::t_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return cuda_emu::t_last_error; }
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureUnmatched: return "cudaErrorStreamCaptureUnmatched";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    default: return "cudaErrorUnknown";
  }
}
const char* cudaGetErrorString(cudaError_t e) { return cudaGetErrorName(e); }

cudaError_t cudaMalloc(void** p, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_mu);
  return set_error(cuda_emu::g_device.allocate(p, bytes, "cudaMalloc"));
}
cudaError_t cudaFree(void* p) {
  std::lock_guard<std::mutex> lock(g_mu);
  return set_error(cuda_emu::g_device.release(p, "cudaFree"));
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) {
  std::lock_guard<std::mutex> lock(g_mu);
  return set_error(cuda_emu::g_pinned.allocate(p, bytes, "cudaHostAlloc"));
}
cudaError_t cudaFreeHost(void* p) {
  std::lock_guard<std::mutex> lock(g_mu);
  return set_error(cuda_emu::g_pinned.release(p, "cudaFreeHost"));
}
cudaError_t cudaMemGetInfo(size_t* free_b, size_t* total_b) {
  std::lock_guard<std::mutex> lock(g_mu);
  *free_b = cuda_emu::g_device.limit - cuda_emu::g_device.used;
  *total_b = cuda_emu::g_device.limit;
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (cudaError_t e = cuda_emu::unsafe_call("cudaMemcpy")) return set_error(e);
  Work w{};
  w.kind = Work::kCopy, w.dst = dst, w.src = src, w.bytes = bytes;
  return set_error(cuda_emu::submit_work(w, nullptr, "cudaMemcpy (the legacy stream)"));
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_mu);
  Work w{};
  w.kind = Work::kCopy, w.dst = dst, w.src = src, w.bytes = bytes;
  return set_error(cuda_emu::submit_work(w, s, "cudaMemcpyAsync on the legacy stream"));
}
cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (cudaError_t e = cuda_emu::unsafe_call("cudaMemset")) return set_error(e);
  Work w{};
  w.kind = Work::kMemset, w.dst = dst, w.value = value, w.bytes = bytes;
  return set_error(cuda_emu::submit_work(w, nullptr, "cudaMemset (the legacy stream)"));
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_mu);
  Work w{};
  w.kind = Work::kMemset, w.dst = dst, w.value = value, w.bytes = bytes;
  return set_error(cuda_emu::submit_work(w, s, "cudaMemsetAsync on the legacy stream"));
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto* st = new cuda_emu::Stream;
  st->nonblocking = (flags & cudaStreamNonBlocking) != 0;
  st->queue.reserve(1024);
  cuda_emu::g_streams.push_back(st);
  *s = st;
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!cuda_emu::known(s)) return set_error(cudaErrorInvalidResourceHandle);
  cuda_emu::drain(s);  // CUDA finishes a destroyed stream's work
  auto& v = cuda_emu::g_streams;
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] == s) v.erase(v.begin() + static_cast<long>(i));
  delete s->graph;
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (cudaError_t e = cuda_emu::unsafe_call("cudaStreamSynchronize")) return set_error(e);
  if (!s) return set_error(cuda_emu::legacy_use("cudaStreamSynchronize of the legacy stream"));
  if (!cuda_emu::known(s)) return set_error(cudaErrorInvalidResourceHandle);
  if (s->capturing) return set_error(cudaErrorStreamCaptureUnsupported);
  cuda_emu::drain(s);
  const cudaError_t e = s->error;
  s->error = cudaSuccess;
  return set_error(e);
}
cudaError_t cudaDeviceSynchronize() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (cudaError_t e = cuda_emu::unsafe_call("cudaDeviceSynchronize")) return set_error(e);
  if (cudaError_t e = cuda_emu::legacy_use("cudaDeviceSynchronize")) return set_error(e);
  cudaError_t e = cudaSuccess;
  for (cuda_emu::Stream* s : cuda_emu::g_streams) {
    cuda_emu::drain(s);
    if (e == cudaSuccess) e = s->error;
    s->error = cudaSuccess;
  }
  return set_error(e);
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!s || !cuda_emu::known(s)) return set_error(cudaErrorStreamCaptureUnsupported);
  if (s->capturing) return set_error(cudaErrorInvalidValue);
  cuda_emu::drain(s);
  s->capturing = true, s->invalidated = false, s->mode = mode, s->capture_thread = std::this_thread::get_id();
  s->graph = new cuda_emu::Graph;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
  std::lock_guard<std::mutex> lock(g_mu);
  *g = nullptr;
  if (!s || !cuda_emu::known(s) || !s->capturing) return set_error(cudaErrorInvalidValue);
  if (s->capture_thread != std::this_thread::get_id() && s->mode != cudaStreamCaptureModeRelaxed)
    return set_error(cudaErrorStreamCaptureUnmatched);
  s->capturing = false;
  cuda_emu::Graph* graph = s->graph;
  s->graph = nullptr;
  if (s->invalidated) {
    delete graph;
    return set_error(cudaErrorStreamCaptureInvalidated);
  }
  *g = graph;
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
  std::lock_guard<std::mutex> lock(g_mu);
  *status = s && s->capturing ? (s->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive)
                              : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long) {
  if (!g) return set_error(cudaErrorInvalidValue);
  *e = new cuda_emu::GraphExec{g->nodes};
  return cudaSuccess;
}
cudaError_t cudaGraphUpload(cudaGraphExec_t e, cudaStream_t) { return e ? cudaSuccess : set_error(cudaErrorInvalidValue); }
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!e) return set_error(cudaErrorInvalidValue);
  Work w{};
  w.kind = Work::kGraph, w.exec = e;
  return set_error(cuda_emu::submit_work(w, s, "cudaGraphLaunch on the legacy stream"));
}
cudaError_t cudaGraphGetNodes(cudaGraph_t g, cudaGraphNode_t*, size_t* n) {
  if (!g) return set_error(cudaErrorInvalidValue);
  *n = g->nodes.size();
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  delete g;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new cuda_emu::Event;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_mu);
  Work w{};
  w.kind = Work::kEvent, w.event = e;
  return set_error(cuda_emu::submit_work(w, s, "cudaEventRecord on the legacy stream"));
}
cudaError_t cudaEventSynchronize(cudaEvent_t) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (cudaError_t e = cuda_emu::unsafe_call("cudaEventSynchronize")) return set_error(e);
  for (cuda_emu::Stream* s : cuda_emu::g_streams) cuda_emu::drain(s);
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = static_cast<float>(b->ms - a->ms);
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}

}  // namespace cuda_emu_rt

#endif  // CUDA_EMU_IMPLEMENTATION
