// Declarations of the per-ISA kernels (signatures in kernels.h), for the files that define them and
// for dispatch.cc, which puts them in tables. Names: <op>_<dtype>__<isa>.
#pragma once

#include "kernels/kernels.h"

namespace rill {
namespace kernels {

#if defined(RILL_HAVE_AVX2)  // kernels/cpu/x86/kernels_avx2.cc: AVX2 + FMA + F16C
MatvecF32 matvec_f32__avx2;
MatvecF16 matvec_f16__avx2;
MatvecQ8 matvec_q8__avx2;
MatvecQ4 matvec_q4__avx2;
MatmulQ8 matmul_q8__avx2;
MatmulQ4 matmul_q4__avx2;
MatmulQ4x16 matmul_q4x16__avx2;
MatmulQ8x16 matmul_q8x16__avx2;
MatmulF32 matmul_f32__avx2;
MatmulF16 matmul_f16__avx2;
Mamba1Scan mamba1_scan__avx2;
PrepareAct prepare_act__avx2;
S4dStep s4d_step__avx2;
Mamba2Ssd mamba2_ssd__avx2;
WkvScan wkv_scan__avx2;
Activation act__avx2;
VecExp exp__avx2;
ConvSilu conv_silu__avx2;
AttendGroup attend_group__avx2;
GatedRmsnorm gated_rmsnorm__avx2;
Layernorm layernorm__avx2;
#endif

#if defined(RILL_HAVE_AVX512)  // kernels/cpu/x86/kernels_avx512.cc: AVX-512 VNNI (quantized products)
MatvecQ8 matvec_q8__avx512vnni;
MatvecQ4 matvec_q4__avx512vnni;
MatmulQ8 matmul_q8__avx512vnni;
MatmulQ4 matmul_q4__avx512vnni;
MatmulQ4x16 matmul_q4x16__avx512vnni;
MatmulQ8x16 matmul_q8x16__avx512vnni;
PrepareAct prepare_act__avx512vnni;
MatvecF32 matvec_f32__avx512;
MatvecF16 matvec_f16__avx512;
MatmulF32 matmul_f32__avx512;
MatmulF16 matmul_f16__avx512;
Mamba2Ssd mamba2_ssd__avx512;
Mamba1Scan mamba1_scan__avx512;
S4dStep s4d_step__avx512;
WkvScan wkv_scan__avx512;
Activation act__avx512;
VecExp exp__avx512;
ConvSilu conv_silu__avx512;
AttendGroup attend_group__avx512;
GatedRmsnorm gated_rmsnorm__avx512;
Layernorm layernorm__avx512;
#endif

#if defined(RILL_HAVE_NEON)  // kernels/cpu/arm/kernels_neon.cc: baseline aarch64 NEON (ARMv8.0)
Mamba1Scan mamba1_scan__neon;
S4dStep s4d_step__neon;
Mamba2Ssd mamba2_ssd__neon;
WkvScan wkv_scan__neon;
Activation act__neon;
VecExp exp__neon;
ConvSilu conv_silu__neon;
GatedRmsnorm gated_rmsnorm__neon;
Layernorm layernorm__neon;
AttendGroup attend_group__neon;
MatvecF32 matvec_f32__neon;
MatvecF16 matvec_f16__neon;
MatvecQ8 matvec_q8__neon;
MatvecQ4 matvec_q4__neon;
MatmulQ8 matmul_q8__neon;
MatmulQ4 matmul_q4__neon;
MatmulQ4x16 matmul_q4x16__neon;
MatmulQ8x16 matmul_q8x16__neon;
MatmulF32 matmul_f32__neon;
MatmulF16 matmul_f16__neon;
// kernels/cpu/arm/kernels_neon_dotprod.cc: ARMv8.2 dotprod (SDOT), int8 activations
PrepareAct prepare_act__neon_dotprod;
MatvecQ8 matvec_q8__neon_dotprod;
MatvecQ4 matvec_q4__neon_dotprod;
MatmulQ8 matmul_q8__neon_dotprod;
MatmulQ4 matmul_q4__neon_dotprod;
MatmulQ8x16 matmul_q8x16__neon_dotprod;
MatmulQ4x16 matmul_q4x16__neon_dotprod;
// kernels/cpu/arm/kernels_neon_i8mm.cc: ARMv8.6 i8mm (USDOT, USMMLA) for the 16-row products
MatmulQ8x16 matmul_q8x16__neon_i8mm;
MatmulQ4x16 matmul_q4x16__neon_i8mm;
#endif

}  // namespace kernels
}  // namespace rill
