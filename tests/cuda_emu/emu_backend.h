// The CUDA backend on the CPU emulation of CUDA (backend_cuda_emu.cc), for tests.
#pragma once

#include "backend/backend.h"
#include "cuda_emu.h"

namespace rill {
const BackendImpl* cuda_emu_backend();
}
