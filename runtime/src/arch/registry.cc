// The architectures this build runs.
#include "arch/arch.h"

namespace rill {

namespace {
const Architecture* const kAll[] = {&kMamba1, &kMamba2, &kRwkv7, &kS4d, &kRecurrentGemma, &kMamba2Hybrid, &kRwkv6, &kGatedDeltaNet, &kGla, &kRetNet};
}

const Architecture* find_arch(Arch a) {
  for (const Architecture* x : kAll)
    if (x->arch == a) return x;
  return nullptr;
}

const char* arch_name(Arch a) {
  const Architecture* x = find_arch(a);
  return x ? x->name : "unknown";
}

}  // namespace rill
