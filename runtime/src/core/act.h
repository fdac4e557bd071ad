// Elementwise activations: one enum for the op tables (backend.h, Ops::act) and the kernels
// (kernels.h, Table::act), so a value means the same function everywhere.
#pragma once

#include <cstdint>

namespace rill {

enum class Act : uint8_t {
  kTanh,        // tanh(x)
  kSigmoid,     // 1 / (1 + exp(-x))
  kReluSq,      // max(x, 0)^2
  kRwkv7Decay,  // exp(-exp(-1/2) sigmoid(x)): RWKV-7's decay, in (0.545, 1)
  kGeluErf,     // x/2 (1 + erf(x / sqrt 2)): exact GELU
  kGeluTanh,    // x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): PyTorch's GELU, approximate="tanh"
  kSilu,        // x sigmoid(x)
  kSoftplus,    // log(1 + exp(x)), x itself above 20 (PyTorch's threshold)
  kExpNegExp,   // exp(-exp(x)): RWKV-6's decay, in (0, 1)
};

}  // namespace rill
