// For tests over every backend: the compiled-in backends this machine runs, the reference first.
#pragma once

#include <vector>

#include "backend/backend.h"

namespace rill_test {

inline std::vector<const rill::BackendImpl*> backends() {
  const rill::BackendImpl* b[16];
  const size_t n = rill::all_backends(b, 16);
  return std::vector<const rill::BackendImpl*>(b, b + n);
}

}  // namespace rill_test
