// Picks the CPU kernel table once from the CPU's features.
#if defined(RILL_HAVE_AVX2)
#include <cpuid.h>
#endif
#if defined(RILL_HAVE_NEON)
#include <sys/auxv.h>
#endif
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/kernels.h"
#include "kernels/ref/kernels_ref.h"

namespace rill {
namespace kernels {

namespace {
#if defined(RILL_HAVE_NEON)
// Linux's aarch64 hwcap bits (asm/hwcap.h): HWCAP_ASIMDDP, HWCAP2_I8MM.
constexpr unsigned long kHwcapAsimdDp = 1UL << 20;
constexpr unsigned long kHwcap2I8mm = 1UL << 13;
#endif
const Table kRef = {.isa = "ref",
                    .matvec_f32 = matvec_f32__ref,
                    .matvec_f16 = matvec_f16__ref,
                    .mamba1_scan = mamba1_scan__ref,
                    .matvec_q8 = matvec_q8__ref,
                    .matvec_q4 = matvec_q4__ref,
                    .matmul_q8 = matmul_q8__ref,
                    .matmul_q4 = matmul_q4__ref,
                    .matmul_f32 = matmul_f32__ref,
                    .matmul_f16 = matmul_f16__ref,
                    .matmul_q4x16 = matmul_q4x16__ref,
                    .matmul_q8x16 = matmul_q8x16__ref,
                    .prepare_act = nullptr,
                    .s4d_step = s4d_step__ref,
                    .mamba2_ssd = mamba2_ssd__ref,
                    .wkv_scan = wkv_scan__ref,
                    .act = act__ref,
                    .exp = exp__ref,
                    .conv_silu = conv_silu__ref,
                    .gated_rmsnorm = gated_rmsnorm__ref,
                    .layernorm = layernorm__ref,
                    .attend_group = attend_group__ref};
#if defined(RILL_HAVE_AVX2)
const Table kAvx2 = {.isa = "avx2",
                     .matvec_f32 = matvec_f32__avx2,
                     .matvec_f16 = matvec_f16__avx2,
                     .mamba1_scan = mamba1_scan__avx2,
                     .matvec_q8 = matvec_q8__avx2,
                     .matvec_q4 = matvec_q4__avx2,
                     .matmul_q8 = matmul_q8__avx2,
                     .matmul_q4 = matmul_q4__avx2,
                     .matmul_f32 = matmul_f32__avx2,
                     .matmul_f16 = matmul_f16__avx2,
                     .matmul_q4x16 = matmul_q4x16__avx2,
                     .matmul_q8x16 = matmul_q8x16__avx2,
                     .prepare_act = prepare_act__avx2,
                     .s4d_step = s4d_step__avx2,
                     .mamba2_ssd = mamba2_ssd__avx2,
                     .wkv_scan = wkv_scan__avx2,
                     .act = act__avx2,
                     .exp = exp__avx2,
                     .conv_silu = conv_silu__avx2,
                     .gated_rmsnorm = gated_rmsnorm__avx2,
                     .layernorm = layernorm__avx2,
                     .attend_group = attend_group__avx2,
                     .ssd_chunk_state = 64};
bool cpu_has_avx2() {
  __builtin_cpu_init();
  unsigned a = 0, b = 0, c = 0, d = 0;
  const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));  // CPUID.1:ECX.F16C
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
}
#endif

#if defined(RILL_HAVE_AVX512)
// 512-bit vectors throughout (VNNI for the quantized products).
const Table kAvx512 = {.isa = "avx512vnni",
                       .matvec_f32 = matvec_f32__avx512,
                       .matvec_f16 = matvec_f16__avx512,
                       .mamba1_scan = mamba1_scan__avx512,
                       .matvec_q8 = matvec_q8__avx512vnni,
                       .matvec_q4 = matvec_q4__avx512vnni,
                       .matmul_q8 = matmul_q8__avx512vnni,
                       .matmul_q4 = matmul_q4__avx512vnni,
                       .matmul_f32 = matmul_f32__avx512,
                       .matmul_f16 = matmul_f16__avx512,
                       .matmul_q4x16 = matmul_q4x16__avx512vnni,
                       .matmul_q8x16 = matmul_q8x16__avx512vnni,
                       .prepare_act = prepare_act__avx512vnni,
                       .s4d_step = s4d_step__avx512,
                       .mamba2_ssd = mamba2_ssd__avx512,
                       .wkv_scan = wkv_scan__avx512,
                       .act = act__avx512,
                       .exp = exp__avx512,
                       .conv_silu = conv_silu__avx512,
                       .gated_rmsnorm = gated_rmsnorm__avx512,
                       .layernorm = layernorm__avx512,
                       .attend_group = attend_group__avx512,
                       .wkv_chunk_keys = 128,
                       .ssd_chunk_state = 64};
bool cpu_has_avx512vnni() {
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
}
#endif

#if defined(RILL_HAVE_NEON)
// Three tables, one per level of the Arm architecture that changes the products of quantized weights;
// the float kernels, scans and row ops are the same NEON ones in all three (neon_table).
struct NeonProducts {
  const char* isa;
  MatvecQ8* matvec_q8;
  MatvecQ4* matvec_q4;
  MatmulQ8* matmul_q8;
  MatmulQ4* matmul_q4;
  MatmulQ4x16* matmul_q4x16;
  MatmulQ8x16* matmul_q8x16;
  PrepareAct* prepare_act;
};
constexpr Table neon_table(const NeonProducts& q) {
  return Table{.isa = q.isa,
               .matvec_f32 = matvec_f32__neon,
               .matvec_f16 = matvec_f16__neon,
               .mamba1_scan = mamba1_scan__neon,
               .matvec_q8 = q.matvec_q8,
               .matvec_q4 = q.matvec_q4,
               .matmul_q8 = q.matmul_q8,
               .matmul_q4 = q.matmul_q4,
               .matmul_f32 = matmul_f32__neon,
               .matmul_f16 = matmul_f16__neon,
               .matmul_q4x16 = q.matmul_q4x16,
               .matmul_q8x16 = q.matmul_q8x16,
               .prepare_act = q.prepare_act,
               .s4d_step = s4d_step__neon,
               .mamba2_ssd = mamba2_ssd__neon,
               .wkv_scan = wkv_scan__neon,
               .act = act__neon,
               .exp = exp__neon,
               .conv_silu = conv_silu__neon,
               .gated_rmsnorm = gated_rmsnorm__neon,
               .layernorm = layernorm__neon,
               .attend_group = attend_group__neon};
}
// ARMv8.0 (Cortex-A53/A72): int8/int4 weights widened to f32, float activations.
const Table kNeon = neon_table({.isa = "neon",
                                .matvec_q8 = matvec_q8__neon,
                                .matvec_q4 = matvec_q4__neon,
                                .matmul_q8 = matmul_q8__neon,
                                .matmul_q4 = matmul_q4__neon,
                                .matmul_q4x16 = matmul_q4x16__neon,
                                .matmul_q8x16 = matmul_q8x16__neon,
                                .prepare_act = nullptr});
// ARMv8.2 dotprod (Cortex-A55/A76/A78, Orin): int8 activations, SDOT.
const Table kNeonDotprod = neon_table({.isa = "neon-dotprod",
                                       .matvec_q8 = matvec_q8__neon_dotprod,
                                       .matvec_q4 = matvec_q4__neon_dotprod,
                                       .matmul_q8 = matmul_q8__neon_dotprod,
                                       .matmul_q4 = matmul_q4__neon_dotprod,
                                       .matmul_q4x16 = matmul_q4x16__neon_dotprod,
                                       .matmul_q8x16 = matmul_q8x16__neon_dotprod,
                                       .prepare_act = prepare_act__neon_dotprod});
// ARMv8.6 i8mm (Neoverse V1+, Thor): the 16-row products on USDOT and USMMLA; the plain-row products
// (the rows % 16 tail) and the activations as on dotprod, which every i8mm CPU has.
const Table kNeonI8mm = neon_table({.isa = "neon-i8mm",
                                    .matvec_q8 = matvec_q8__neon_dotprod,
                                    .matvec_q4 = matvec_q4__neon_dotprod,
                                    .matmul_q8 = matmul_q8__neon_dotprod,
                                    .matmul_q4 = matmul_q4__neon_dotprod,
                                    .matmul_q4x16 = matmul_q4x16__neon_i8mm,
                                    .matmul_q8x16 = matmul_q8x16__neon_i8mm,
                                    .prepare_act = prepare_act__neon_dotprod});

// The CPU's features as the kernel reports them (getauxval), never the compile flags: a build for
// -march=armv8-a still uses SDOT and SMMLA where the CPU has them.
bool cpu_has_dotprod() { return (getauxval(AT_HWCAP) & kHwcapAsimdDp) != 0; }
bool cpu_has_i8mm() { return cpu_has_dotprod() && (getauxval(AT_HWCAP2) & kHwcap2I8mm) != 0; }
#endif

const Table* choose() {
#if defined(RILL_HAVE_NEON)
  if (cpu_has_i8mm()) return &kNeonI8mm;
  if (cpu_has_dotprod()) return &kNeonDotprod;
  return &kNeon;
#endif
#if defined(RILL_HAVE_AVX512)
  if (cpu_has_avx512vnni()) return &kAvx512;
#endif
#if defined(RILL_HAVE_AVX2)
  if (cpu_has_avx2()) return &kAvx2;
#endif
  return &kRef;
}
}  // namespace

bool cpu_runs_avx2() {
#if defined(RILL_HAVE_AVX2)
  static const bool yes = cpu_has_avx2();
  return yes;
#else
  return false;
#endif
}

const Table& active() {
  static const Table* t = choose();  // first call happens in Model::init, not in step
  return *t;
}

size_t compiled(const Table** out, size_t max) {
  size_t n = 0;
  if (n < max) out[n++] = &kRef;
#if defined(RILL_HAVE_NEON)
  if (n < max) out[n++] = &kNeon;
  if (n < max) out[n++] = &kNeonDotprod;
  if (n < max) out[n++] = &kNeonI8mm;
#endif
#if defined(RILL_HAVE_AVX2)
  if (n < max) out[n++] = &kAvx2;
#endif
#if defined(RILL_HAVE_AVX512)
  if (n < max) out[n++] = &kAvx512;
#endif
  return n;
}

size_t available(const Table** out, size_t max) {
  size_t n = 0;
  if (n < max) out[n++] = &kRef;
#if defined(RILL_HAVE_NEON)
  if (n < max) out[n++] = &kNeon;
  if (cpu_has_dotprod() && n < max) out[n++] = &kNeonDotprod;
  if (cpu_has_i8mm() && n < max) out[n++] = &kNeonI8mm;
#endif
#if defined(RILL_HAVE_AVX2)
  if (cpu_has_avx2() && n < max) out[n++] = &kAvx2;
#endif
#if defined(RILL_HAVE_AVX512)
  if (cpu_has_avx512vnni() && n < max) out[n++] = &kAvx512;
#endif
  return n;
}

}  // namespace kernels
}  // namespace rill
