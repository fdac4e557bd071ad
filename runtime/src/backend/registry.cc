// The compiled-in backends.
#include "backend/backend.h"

namespace rill {

const BackendImpl* find_backend(Backend kind) {
  if (kind == Backend::kCpu) return cpu_backend();
  return nullptr;  // kCuda: not compiled into this build
}

size_t all_backends(const BackendImpl** out, size_t max) { return cpu_backends(out, max); }

}  // namespace rill
