// Scalar reference versions of the dispatched kernels.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace rill {
namespace kernels {
MatvecF32 matvec_f32__ref;
MatvecF16 matvec_f16__ref;
MatvecQ8 matvec_q8__ref;
MatvecQ4 matvec_q4__ref;
MatmulQ8 matmul_q8__ref;
MatmulQ4 matmul_q4__ref;
MatmulQ4x16 matmul_q4x16__ref;
MatmulQ8x16 matmul_q8x16__ref;
MatmulF32 matmul_f32__ref;
MatmulF16 matmul_f16__ref;
Mamba1Scan mamba1_scan__ref;
S4dStep s4d_step__ref;
Mamba2Ssd mamba2_ssd__ref;
WkvScan wkv_scan__ref;
Activation act__ref;
VecExp exp__ref;
ConvSilu conv_silu__ref;
GatedRmsnorm gated_rmsnorm__ref;
Layernorm layernorm__ref;
AttendGroup attend_group__ref;
}  // namespace kernels
}  // namespace rill
