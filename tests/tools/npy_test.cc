// The strict .npy reader and writer (runtime/tools/npy): what numpy writes reads back exactly, and
// each way a file can be malformed is refused with its reason.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "npy.h"
#include "test_util.h"

using namespace rill_test;
namespace npy = rill::npy;

namespace {

// A .npy file with header text `dict` (padded as numpy pads it) and `data` bytes.
std::string make(const std::string& dict, const std::string& data, unsigned char major = 1) {
  std::string h = dict;
  const size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  std::string b = std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
  b += static_cast<char>(h.size() & 0xFF);
  b += static_cast<char>((h.size() >> 8) & 0xFF);
  if (major != 1) b += std::string(2, '\0');
  return b + h + data;
}
std::string floats(std::initializer_list<float> v) {
  std::string s;
  for (float f : v) s.append(reinterpret_cast<const char*>(&f), 4);
  return s;
}
std::string why_refused(const std::string& bytes, bool f64 = false) {
  npy::Array a;
  std::string why;
  return npy::parse(bytes, &a, &why, f64) ? "" : why;
}

}  // namespace

TEST_SUITE("npy") {
  TEST_CASE("what numpy writes reads back: every committed .npy, and a written file round-trips") {
    size_t files = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(src_dir())) {
      const std::string p = e.path().string();
      if (p.size() < 4 || p.compare(p.size() - 4, 4, ".npy") != 0 || p.find("/build") != std::string::npos) continue;
      npy::Array a;
      std::string why;
      CHECK_MESSAGE(npy::read(p, &a, &why), p << ": " << why);
      ++files;
    }
    CHECK(files >= 60);
    TempDir tmp;
    const float v[6] = {1.5f, -2.f, 0.f, 3.25f, 1e-30f, -0.f};
    std::string why;
    REQUIRE(npy::write(tmp.file("a.npy"), v, {2, 3}, &why));
    npy::Array a;
    REQUIRE(npy::read(tmp.file("a.npy"), &a, &why));
    CHECK(a.shape == std::vector<size_t>{2, 3});
    CHECK(std::memcmp(a.data.data(), v, sizeof v) == 0);
    REQUIRE(npy::write(tmp.file("b.npy"), v, {6}, &why));  // 1-D: "(6,)"
    REQUIRE(npy::read(tmp.file("b.npy"), &a, &why));
    CHECK(a.shape == std::vector<size_t>{6});
    CHECK(read_file(tmp.file("b.npy")).find("'shape': (6,)") != std::string::npos);
  }

  TEST_CASE("float64 only where asked for; versions 2 and 3; a scalar") {
    double d[2] = {0.5, -7.25};
    const std::string f8 = make("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                                std::string(reinterpret_cast<const char*>(d), sizeof d));
    CHECK(why_refused(f8).find("'<f8'") != std::string::npos);
    npy::Array a;
    std::string why;
    REQUIRE(npy::parse(f8, &a, &why, true));
    CHECK(a.was_f64);
    CHECK(a.data == std::vector<float>{0.5f, -7.25f});
    CHECK(why_refused(make("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", floats({1}), 2)).empty());
    CHECK(why_refused(make("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", floats({1}), 3)).empty());
    CHECK(why_refused(make("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", floats({1}))).empty());
  }

  TEST_CASE("each malformed file is refused with its reason") {
    const std::string ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
    const std::string four = floats({1, 2, 3, 4});
    REQUIRE(why_refused(make(ok, four)).empty());
    auto with_byte = [](std::string b, size_t at, char c) {
      b[at] = c;
      return b;
    };
    struct Case {
      std::string bytes, reason;
    } cases[] = {
        {"not numpy at all", "magic"},
        {with_byte(make(ok, four), 6, '\x09'), "version"},
        {make(ok, four).substr(0, 12), "truncated"},
        {make("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", four), "'>f4'"},
        {make("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }", four + four), "'<i8'"},
        {make("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", four), "Fortran"},
        {make("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", four), "shape needs"},
        {make(ok, four + floats({5})), "shape needs"},
        {make(ok, four.substr(0, 12)), "shape needs"},
        {make("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", four), "shape"},
        {make("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), 'extra': 1, }", four), "unknown key"},
        {make("{'descr': '<f4', 'shape': (2, 2), }", four), "lacks"},
        {make("['descr', '<f4']", four), "dictionary"},
        {make("{'descr': '<f4', 'fortran_order': maybe, 'shape': (2, 2), }", four), "fortran_order"},
        {make("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999, 99999999, 99999999), }", four), "too large"},
    };
    for (const Case& c : cases) {
      const std::string why = why_refused(c.bytes);
      CHECK_MESSAGE(why.find(c.reason) != std::string::npos, "expected '" << c.reason << "' in '" << why << "'");
    }
    std::string no_newline = make(ok, four);
    no_newline[no_newline.size() - four.size() - 1] = ' ';
    CHECK(why_refused(no_newline).find("newline") != std::string::npos);
    npy::Array a;
    std::string why;
    CHECK_FALSE(npy::read("/nonexistent/x.npy", &a, &why));
    CHECK(why.find("cannot open") != std::string::npos);
  }
}
