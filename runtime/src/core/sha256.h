// SHA-256 (FIPS 180-4), for the provenance of converted files.
#pragma once
#include <cstddef>
#include <cstdint>

namespace rill {


class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  // Finalises: writes 32 digest bytes and, if hex is not null, 64 lowercase hex digits + NUL.
  void finish(uint8_t digest[32], char hex[65]);

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};


}  // namespace rill
