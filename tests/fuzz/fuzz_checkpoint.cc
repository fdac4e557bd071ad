// libFuzzer: the converter's readers. Input = config.json bytes, a NUL, then a safetensors file.
// Every failure must be a ConvertError with a message; anything else (another exception, a crash,
// a hang, a huge allocation) is a finding.
#include <cstdint>
#include <cstring>
#include <string>

#include "content.h"
#include "safetensors.h"

using namespace rill::convert;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t* z = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const std::string config(reinterpret_cast<const char*>(data), z ? static_cast<size_t>(z - data) : size);
  const uint8_t* st = z ? z + 1 : data + size;
  const size_t st_size = static_cast<size_t>(data + size - st);
  Checkpoint ck;
  try {
    ck.parse(st, st_size, "fuzz.safetensors");
  } catch (const ConvertError&) {
  }
  const std::string dir = "fuzz";
  for (rill::fb::DType dt : {rill::fb::DType::F32, rill::fb::DType::F16}) {
    ArchInput in{ck, config, dir, dt, false, dt};  // the key/value ring (RecurrentGemma) in the matrices' dtype
    // Every architecture's mapping sees every input (as convert.cc would pick one of them).
    FileContent (*plans[])(const ArchInput&) = {mamba1_content, mamba2_content, rwkv7_content, s4d_content,
                                                recurrent_gemma_content};
    bool (*matches[])(const ArchInput&) = {mamba1_matches, mamba2_matches, rwkv7_matches, s4d_matches,
                                           recurrent_gemma_matches};
    for (size_t a = 0; a < 5; ++a) {
      try {
        if (!matches[a](in)) continue;
        FileContent p = plans[a](in);
        for (const FileTensor& t : p.tensors) (void)t.values();
      } catch (const ConvertError&) {
      }
    }
  }
  return 0;
}
