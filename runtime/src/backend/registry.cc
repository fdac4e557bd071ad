// The compiled-in backends.
#include "backend/backend.h"

namespace rill {

namespace {
const BackendImpl* g_override[2] = {nullptr, nullptr};
}

void override_backend(Backend kind, const BackendImpl* b) {
  const auto i = static_cast<size_t>(kind);
  if (i < 2) g_override[i] = b;
}

const BackendImpl* find_backend(Backend kind) {
  const auto i = static_cast<size_t>(kind);
  if (i < 2 && g_override[i]) return g_override[i];
  if (kind == Backend::kCpu) return cpu_backend();
#if defined(RILL_HAVE_CUDA)
  if (kind == Backend::kCuda) return cuda_backend();
#endif
  return nullptr;
}

const char* compiled_backends() {
#if defined(RILL_HAVE_CUDA)
  return "cpu, cuda";
#else
  return "cpu";
#endif
}

size_t all_backends(const BackendImpl** out, size_t max) { return cpu_backends(out, max); }

}  // namespace rill
