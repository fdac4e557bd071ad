// A fast non-cryptographic 64-bit hash (word-wise multiply-rotate), for state blob checksums and
// model fingerprints. Detects corruption and mix-ups, not tampering.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace rill {

inline uint64_t hash64(const void* data, size_t n, uint64_t h = 0x9E3779B97F4A7C15ull) {
  constexpr uint64_t k1 = 0x87C37B91114253D5ull, k2 = 0x4CF5AD432745937Full;
  const unsigned char* p = static_cast<const unsigned char*>(data);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h ^= w * k1;
    h = ((h << 31) | (h >> 33)) * k2;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p + i, n - i);
  h ^= (tail * k1) ^ n;
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  return h;
}

}  // namespace rill
