// Token tiling shared by the CPU kernel files: the batched products run T tokens as tiles of NT, then
// one tile of the T % NT left, each size a compile-time constant so a tile's accumulators stay in
// registers. ISA-neutral; each kernel file instantiates it with its own tile functions.
#pragma once

#include <cstddef>
#include <type_traits>

namespace rill {
namespace kernels {

template <std::size_t K, class F>
inline void token_tail(std::size_t n, std::size_t t0, F& f) {
  if constexpr (K > 0) {
    if (n == K) f(std::integral_constant<std::size_t, K>{}, t0);
    else token_tail<K - 1>(n, t0, f);
  }
}

// f(std::integral_constant<size_t, nt>, t0) for tiles of NT tokens over [0, T), then the rest (nt < NT).
template <std::size_t NT, class F>
inline void token_tiles(std::size_t T, F f) {
  std::size_t t = 0;
  for (; t + NT <= T; t += NT) f(std::integral_constant<std::size_t, NT>{}, t);
  token_tail<NT - 1>(T - t, t, f);
}

}  // namespace kernels
}  // namespace rill
