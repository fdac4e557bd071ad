// SHA-256 (FIPS 180-4), for the provenance of converted files and the weights' checksum. On x86 CPUs
// with the SHA extensions (Intel since Goldmont / Ice Lake, AMD since Zen) the blocks go through them,
// about five times faster than the portable code; the digest is the same.
#pragma once
#include <cstddef>
#include <cstdint>

namespace rill {


class Sha256 {
 public:
  // portable: never the SHA instructions (for testing the two paths against each other).
  explicit Sha256(bool portable = false);
  // Whether this CPU's SHA instructions are used.
  static bool accelerated();
  void update(const void* data, size_t n);
  // Finalises: writes 32 digest bytes and, if hex is not null, 64 lowercase hex digits + NUL.
  void finish(uint8_t digest[32], char hex[65]);

 private:
  void blocks(const uint8_t* p, size_t n);  // n whole 64-byte blocks
  void block(const uint8_t* p);
  bool fast_ = false;
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};


}  // namespace rill
