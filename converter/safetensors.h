// Reader for Hugging Face safetensors checkpoints: one file, or shards named by an index.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace rill {
namespace convert {

// Resizes v to n zeroed elements, asking for transparent huge pages first where the buffer is large.
// A multi-GB model's tensors otherwise fault in 4 KiB at a time: a 4.5 B-parameter conversion took
// 135 s so and 60 s with huge pages, on this 2-core VM. Only an advice: where the kernel gives none,
// nothing changes.
void huge_resize_bytes(void* data, size_t bytes);
template <class T>
void big_resize(std::vector<T>* v, size_t n) {
  v->clear();
  v->reserve(n);
  huge_resize_bytes(v->data(), n * sizeof(T));
  v->resize(n);
}


// Every converter failure: a message that names the file, tensor or field and the cause.
struct ConvertError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class SrcDType { kF32, kF16, kBF16 };
const char* src_dtype_name(SrcDType d);

struct SrcTensor {
  std::string name;
  SrcDType dtype;
  std::vector<uint64_t> shape;
  const uint8_t* data;  // inside a mapping owned by the Checkpoint
  uint64_t bytes;
  std::string file;     // file name (no directory)
  uint64_t count() const;
};

struct SrcFile {
  std::string path, name;
  uint64_t size = 0;
};

class Checkpoint {
 public:
  ~Checkpoint();
  // Opens DIR/model.safetensors, or the shards listed in DIR/model.safetensors.index.json.
  static std::unique_ptr<Checkpoint> open_dir(const std::string& dir);
  // Opens one safetensors file (also the unit the fuzzer drives).
  void add_file(const std::string& path);
  // Parses a safetensors header from memory (bytes = whole file); used by add_file and tests.
  void parse(const uint8_t* bytes, uint64_t size, const std::string& name);

  const std::map<std::string, SrcTensor>& tensors() const { return tensors_; }
  const SrcTensor* find(const std::string& name) const;
  const std::vector<SrcFile>& files() const { return files_; }
  // Reads a tensor as f32 values, in the buffer recycle() was given where it is large enough.
  std::vector<float> read_f32(const SrcTensor& t) const;
  // Keeps the largest finished buffer for the next read_f32: a multi-GB conversion otherwise faults in
  // (and the kernel zeroes) fresh pages for every tensor, a fifth of its time. Whoever is done with a
  // read_f32 result hands it back (the writer, the mappings that reshape a tensor).
  void recycle(std::vector<float>&& v) const {
    if (v.capacity() > spare_.capacity()) spare_ = std::move(v);
  }

 private:
  std::map<std::string, SrcTensor> tensors_;
  std::vector<SrcFile> files_;
  std::vector<std::pair<void*, size_t>> maps_;
  mutable std::vector<float> spare_;
};

}  // namespace convert
}  // namespace rill
