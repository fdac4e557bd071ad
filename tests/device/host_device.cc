#include "device/host_device.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace rill_test {
namespace {

using namespace rill;

uint64_t g_allocs = 0, g_frees = 0;

HostDeviceControl& control() {
  static HostDeviceControl c;
  return c;
}

void* device_alloc(size_t bytes) {
  void* p = std::aligned_alloc(kAlign, align_up(bytes ? bytes : 1, kAlign));
  if (p) ++g_allocs;
  return p;
}
void device_free(const void* p) {
  if (!p) return;
  std::free(const_cast<void*>(p));
  ++g_frees;
}

struct Recorded {
  PassFn fn = nullptr;
  alignas(16) unsigned char arg[kMaxRecordArg];
};

Status probe(int device, Error* err) {
  if (device != 0) return fail(err, Status::kNoBackend, "host-device: no device %d (it has device 0)", device);
  return Status::kOk;
}

Status place_weights(int, const unsigned char* data, uint64_t bytes, const unsigned char** out, Error* err) {
  void* p = device_alloc(bytes);
  if (!p) return fail(err, Status::kOutOfMemory, "host-device: no memory for %llu bytes of weights",
                      static_cast<unsigned long long>(bytes));
  std::memcpy(p, data, bytes);
  *out = static_cast<const unsigned char*>(p);
  return Status::kOk;
}

void release_weights(const unsigned char* w) { device_free(w); }

Status open(int, size_t arena_bytes, size_t io_bytes, DevicePass* out, Error* err) {
  if (arena_bytes > control().memory_limit)
    return fail(err, Status::kOutOfMemory, "host-device: a %zu-byte arena does not fit in %zu bytes", arena_bytes,
                control().memory_limit);
  out->arena = static_cast<unsigned char*>(device_alloc(arena_bytes));
  out->io = static_cast<unsigned char*>(device_alloc(io_bytes));
  out->impl = new (std::nothrow) Recorded[kMaxRecorded];
  if (!out->arena || !out->io || !out->impl) {
    device_free(out->arena), device_free(out->io), delete[] static_cast<Recorded*>(out->impl);
    *out = DevicePass{};
    return fail(err, Status::kOutOfMemory, "host-device: no memory for a %zu-byte arena", arena_bytes);
  }
  std::memset(out->arena, 0xFF, arena_bytes);  // NaN everywhere: what the pass reads, it must have written
  return Status::kOk;
}

void close(DevicePass* p) {
  device_free(p->arena);
  device_free(p->io);
  delete[] static_cast<Recorded*>(p->impl);
  p->arena = p->io = nullptr;
  p->impl = nullptr;
}

void copy_bytes(const DevicePass&, void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

Status sync(const DevicePass&) { return control().fail_sync ? Status::kDeviceError : Status::kOk; }

Status record(DevicePass* p, uint32_t key, PassFn fn, const void* arg, size_t arg_bytes, Error* err) {
  if (key >= kMaxRecorded || arg_bytes > kMaxRecordArg) return fail(err, Status::kInvalidArgument, "record key");
  Recorded& r = static_cast<Recorded*>(p->impl)[key];
  r.fn = fn;
  std::memcpy(r.arg, arg, arg_bytes);
  return Status::kOk;
}

bool replay(const DevicePass& p, uint32_t key) {
  const Recorded& r = static_cast<const Recorded*>(p.impl)[key];
  if (!r.fn) return false;
  ++control().replays;
  r.fn(r.arg);
  return true;
}

void enter(const DevicePass&) {}

void alloc_counts(uint64_t* a, uint64_t* f) { *a = g_allocs, *f = g_frees; }
double read_bandwidth(int, size_t) { return 0; }
size_t recorded_ops(const DevicePass&, uint32_t) { return 0; }

const DeviceHooks kHooks = {.probe = probe,
                            .release_weights = release_weights,
                            .open = open,
                            .close = close,
                            .to_device = copy_bytes,
                            .to_host = copy_bytes,
                            .sync = sync,
                            .record = record,
                            .replay = replay,
                            .enter = enter,
                            .alloc_counts = alloc_counts,
                            .read_bandwidth = read_bandwidth,
                            .recorded_ops = recorded_ops};

}  // namespace

const BackendImpl* host_device_backend() {
  static const BackendImpl b = [] {
    BackendImpl x = *cpu_backend();
    x.name = "host-device";
    x.kind = Backend::kCuda;
    x.place_weights = place_weights;
    x.device = &kHooks;
    return x;
  }();
  return &b;
}

HostDeviceControl& host_device_control() { return control(); }

}  // namespace rill_test
