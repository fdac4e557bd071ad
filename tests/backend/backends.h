// For tests over every backend: the compiled-in backends this machine runs, the reference first.
#pragma once

#include <vector>

#include "backend/backend.h"
#if defined(RILL_TEST_CUDA_EMU)
#include "emu_backend.h"
#endif

namespace rill_test {

// The test build of the CUDA emulation (rill_cuda_emu_tests) checks cpu-ref and cuda-emu.
inline std::vector<const rill::BackendImpl*> backends() {
  const rill::BackendImpl* b[16];
  const size_t n = rill::all_backends(b, 16);
#if defined(RILL_TEST_CUDA_EMU)
  return {b[0], n ? rill::cuda_emu_backend() : nullptr};
#else
  return std::vector<const rill::BackendImpl*>(b, b + n);
#endif
}

}  // namespace rill_test
