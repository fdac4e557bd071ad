// The CUDA emulation's half precision (cuda_emu.h).
#pragma once
#include "cuda_emu.h"
