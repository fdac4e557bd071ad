// The CUDA backend (runtime/kernels/cuda/backend_cuda.cu) built as C++ against the CPU emulation of
// CUDA (cuda_emu.h), registered as the backend "cuda-emu": its kernels, streams and graphs run on the CPU.
#define CUDA_EMU_IMPLEMENTATION
#define RILL_CUDA_BACKEND_NAME "cuda-emu"
#define RILL_CUDA_BACKEND_FN cuda_emu_backend
#include "kernels/cuda/backend_cuda.cu"
