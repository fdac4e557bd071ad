// A host emulation of a device backend: the CPU's op table behind DeviceHooks, with its own copy of the
// weights, a separately allocated arena per pass (filled with NaN bytes when opened), staging copies,
// and recorded passes kept as functions and run again on replay. It runs Session's and Model's device
// path (everything but the CUDA kernels) on any machine, bit-identical to the CPU backend.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/backend.h"
#include "core/model_impl.h"

namespace rill_test {

struct HostDeviceControl {
  bool fail_sync = false;          // the next syncs report a device failure
  size_t memory_limit = SIZE_MAX;  // pass arenas larger than this fail to open (kOutOfMemory)
  uint64_t replays = 0;            // recorded passes run again
};

const rill::BackendImpl* host_device_backend();
HostDeviceControl& host_device_control();

}  // namespace rill_test
