// The CUDA emulation stands in for the CUDA runtime (cuda_emu.h).
#pragma once
#include "cuda_emu.h"
