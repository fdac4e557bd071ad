#include "safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "kernels/kernels.h"

namespace rill {
namespace convert {

using json = nlohmann::json;

const char* src_dtype_name(SrcDType d) {
  switch (d) {
    case SrcDType::kF32: return "F32";
    case SrcDType::kF16: return "F16";
    case SrcDType::kBF16: return "BF16";
  }
  return "?";
}

uint64_t SrcTensor::count() const {
  uint64_t n = 1;
  for (uint64_t s : shape) n *= s;
  return n;
}

Checkpoint::~Checkpoint() {
  for (auto& m : maps_) munmap(m.first, m.second);
}

static bool file_exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

std::unique_ptr<Checkpoint> Checkpoint::open_dir(const std::string& dir) {
  auto ck = std::make_unique<Checkpoint>();
  const std::string single = dir + "/model.safetensors";
  const std::string index = dir + "/model.safetensors.index.json";
  if (file_exists(index)) {
    std::ifstream f(index);
    json j;
    try {
      j = json::parse(f);
    } catch (const json::exception& e) {
      throw ConvertError(index + ": not valid JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw ConvertError(index + ": no \"weight_map\" object");
    std::set<std::string> shards;
    for (auto& kv : j["weight_map"].items()) {
      if (!kv.value().is_string()) throw ConvertError(index + ": weight_map[" + kv.key() + "] is not a string");
      const std::string s = kv.value().get<std::string>();
      if (s.find('/') != std::string::npos || s.empty() || s[0] == '.')
        throw ConvertError(index + ": shard name \"" + s + "\" must be a plain file name in the checkpoint folder");
      shards.insert(s);
    }
    for (const auto& s : shards) {
      if (!file_exists(dir + "/" + s)) throw ConvertError(index + " lists shard " + s + ", which is missing");
      ck->add_file(dir + "/" + s);
    }
    for (auto& kv : j["weight_map"].items()) {
      const SrcTensor* t = ck->find(kv.key());
      if (!t) throw ConvertError(index + " maps " + kv.key() + " to " + kv.value().get<std::string>() +
                                 ", which does not contain it");
      if (t->file != kv.value().get<std::string>())
        throw ConvertError(index + " maps " + kv.key() + " to " + kv.value().get<std::string>() +
                           " but it was found in " + t->file);
    }
  } else if (file_exists(single)) {
    ck->add_file(single);
  } else {
    throw ConvertError(dir + ": neither model.safetensors nor model.safetensors.index.json found");
  }
  return ck;
}

void Checkpoint::add_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ConvertError(path + ": " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < 8) {
    ::close(fd);
    throw ConvertError(path + ": too short to be a safetensors file");
  }
  void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw ConvertError(path + ": cannot map: " + std::strerror(errno));
  maps_.emplace_back(p, static_cast<size_t>(st.st_size));
  const std::string name = path.substr(path.find_last_of('/') + 1);
  files_.push_back(SrcFile{path, name, static_cast<uint64_t>(st.st_size)});
  parse(static_cast<const uint8_t*>(p), static_cast<uint64_t>(st.st_size), name);
}

void Checkpoint::parse(const uint8_t* bytes, uint64_t size, const std::string& name) {
  if (size < 8) throw ConvertError(name + ": too short to be a safetensors file");
  uint64_t hlen;
  std::memcpy(&hlen, bytes, 8);
  constexpr uint64_t kMaxHeader = 100ull << 20;  // the format's own limit is 100 MB
  if (hlen > kMaxHeader) throw ConvertError(name + ": header length " + std::to_string(hlen) + " exceeds 100 MB");
  if (hlen > size - 8) throw ConvertError(name + ": header length " + std::to_string(hlen) + " exceeds the file");
  json h;
  try {
    h = json::parse(bytes + 8, bytes + 8 + hlen);
  } catch (const json::exception& e) {
    throw ConvertError(name + ": header is not valid JSON: " + e.what());
  }
  if (!h.is_object()) throw ConvertError(name + ": header is not a JSON object");
  const uint64_t data_start = 8 + hlen;
  const uint64_t data_len = size - data_start;
  for (auto& kv : h.items()) {
    if (kv.key() == "__metadata__") continue;
    const std::string& tn = kv.key();
    const json& v = kv.value();
    auto bad = [&](const std::string& why) { return ConvertError(name + ": tensor " + tn + ": " + why); };
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw bad("needs dtype, shape and data_offsets");
    if (!v["dtype"].is_string()) throw bad("dtype is not a string");
    const std::string dt = v["dtype"].get<std::string>();
    SrcTensor t;
    t.name = tn;
    t.file = name;
    size_t esize;
    if (dt == "F32") t.dtype = SrcDType::kF32, esize = 4;
    else if (dt == "F16") t.dtype = SrcDType::kF16, esize = 2;
    else if (dt == "BF16") t.dtype = SrcDType::kBF16, esize = 2;
    else throw bad("dtype " + dt + " is not supported (F32, F16, BF16 are)");
    if (!v["shape"].is_array() || v["shape"].size() > 8) throw bad("shape must be an array of at most 8 dims");
    uint64_t count = 1;
    for (const json& d : v["shape"]) {
      if (!d.is_number_unsigned()) throw bad("shape entries must be non-negative integers");
      const uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && count > (uint64_t(1) << 48) / dim) throw bad("shape is too large");
      count *= dim;
      t.shape.push_back(dim);
    }
    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw bad("data_offsets must be two non-negative integers");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_len) throw bad("data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                                         ") lie outside the data (" + std::to_string(data_len) + " bytes)");
    if (e - b != count * esize)
      throw bad("data_offsets span " + std::to_string(e - b) + " bytes, shape and dtype need " +
                std::to_string(count * esize));
    t.data = bytes + data_start + b;
    t.bytes = e - b;
    if (tensors_.count(tn)) throw bad("appears in more than one file");
    tensors_.emplace(tn, std::move(t));
  }
}

const SrcTensor* Checkpoint::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

void huge_resize_bytes(void* data, size_t bytes) {
  constexpr uintptr_t kHuge = 2u << 20;
  if (bytes < 2 * kHuge) return;
  const uintptr_t a = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t b = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHuge - 1);
#ifdef MADV_HUGEPAGE
  if (b > a) ::madvise(reinterpret_cast<void*>(a), b - a, MADV_HUGEPAGE);
#endif
}

std::vector<float> Checkpoint::read_f32(const SrcTensor& t) const {
  const uint64_t n = t.count();
  std::vector<float> out;
  // Large tensors only (small ones come from the heap, and a mapping that computes its values from a
  // small read must not take the large buffer with it).
  if (n >= (1u << 20) && spare_.capacity() >= n) out.swap(spare_);
  big_resize(&out, n);
  switch (t.dtype) {
    case SrcDType::kF32:
      std::memcpy(out.data(), t.data, n * 4);
      break;
    case SrcDType::kF16:
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        out[i] = kernels::f16_to_f32(h);
      }
      break;
    case SrcDType::kBF16:  // the top half of an f32 (kernels::bf16_to_f32), inline so the loop vectorises
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        const uint32_t bits = static_cast<uint32_t>(h) << 16;
        std::memcpy(&out[i], &bits, 4);
      }
      break;
  }
  return out;
}

}  // namespace convert
}  // namespace rill
