// A small self-documenting argument parser for the rill CLI: short and long spellings, defaults and
// RILL_* environment variables shown in --help.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace rill {
namespace cli {

struct Opt {
  const char* shrt;  // "-n" or nullptr
  const char* lng;   // "--n-predict"
  const char* meta;  // "N" or nullptr for a flag
  const char* help;
  std::string value;  // default, then parsed value
  const char* env = nullptr;
  bool set = false;
};

struct Args {
  const char* cmd;
  const char* usage;    // "MODEL.rill [options]"
  const char* summary;  // one paragraph
  const char* example;
  std::vector<Opt> opts;
  std::vector<std::string> positional;

  Opt* find(const char* name) {
    for (Opt& o : opts)
      if ((o.lng && !std::strcmp(o.lng, name)) || (o.shrt && !std::strcmp(o.shrt, name))) return &o;
    return nullptr;
  }
  const std::string& get(const char* lng) { return find(lng)->value; }
  bool flag(const char* lng) { return find(lng)->set; }

  void help(FILE* f) const {
    std::fprintf(f, "usage: rill %s %s\n\n%s\n\noptions:\n", cmd, usage, summary);
    for (const Opt& o : opts) {
      std::string l = "  ";
      l += o.shrt ? std::string(o.shrt) + ", " : "    ";
      l += o.lng;
      if (o.meta) l += std::string(" ") + o.meta;
      std::fprintf(f, "%-30s %s", l.c_str(), o.help);
      if (o.meta && !o.value.empty()) std::fprintf(f, " (default: %s)", o.value.c_str());
      if (o.env) std::fprintf(f, " [env %s]", o.env);
      std::fprintf(f, "\n");
    }
    std::fprintf(f, "  -h, --help                     show this help\n\nexample:\n  %s\n", example);
  }

  // Returns 0 on success, 2 on a usage error (message printed), 1 if help was printed (exit 0).
  int parse(int argc, char** argv) {
    for (Opt& o : opts)
      if (o.env)
        if (const char* e = std::getenv(o.env)) o.value = e, o.set = true;
    for (int i = 0; i < argc; ++i) {
      const char* a = argv[i];
      if (!std::strcmp(a, "-h") || !std::strcmp(a, "--help")) {
        help(stdout);
        return 1;
      }
      if (a[0] == '-' && a[1] != '\0') {
        std::string name = a, val;
        const bool has_eq = name.rfind("--", 0) == 0 && name.find('=') != std::string::npos;
        if (has_eq) val = name.substr(name.find('=') + 1), name = name.substr(0, name.find('='));
        Opt* o = find(name.c_str());
        if (!o) {
          std::fprintf(stderr, "rill %s: unknown option %s\n(see rill %s --help)\nexample: %s\n", cmd, a, cmd, example);
          return 2;
        }
        o->set = true;
        if (o->meta) {
          if (!has_eq) {
            if (i + 1 >= argc) {
              std::fprintf(stderr, "rill %s: %s needs a value (%s)\n", cmd, name.c_str(), o->meta);
              return 2;
            }
            val = argv[++i];
          }
          o->value = val;
        }
      } else {
        positional.push_back(a);
      }
    }
    return 0;
  }
};

// "a,b,,c" -> {"a", "b", "", "c"}; "" -> {}. Empty items are kept so callers can refuse them.
inline std::vector<std::string> split(const std::string& s, char sep = ',') {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(sep, i);
    if (j == std::string::npos) j = s.size();
    out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

inline bool parse_int(const std::string& s, long long lo, long long hi, long long* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

inline bool parse_float(const std::string& s, double* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (*end || v != v) return false;
  *out = v;
  return true;
}

// The integer value of option lng in [lo, hi], or false with a message naming the option, its value
// and the range.
inline bool int_option(Args& a, const char* lng, long long lo, long long hi, long long* out) {
  if (parse_int(a.get(lng), lo, hi, out)) return true;
  std::fprintf(stderr, "rill %s: %s wants an integer in [%lld, %lld], got '%s'\n", a.cmd, lng, lo, hi, a.get(lng).c_str());
  return false;
}

// The number value of option lng in [lo, hi] (lo_open: lo itself excluded), or false with a message.
inline bool number_option(Args& a, const char* lng, double lo, double hi, bool lo_open, double* out) {
  if (parse_float(a.get(lng), out) && (lo_open ? *out > lo : *out >= lo) && *out <= hi) return true;
  std::fprintf(stderr, "rill %s: %s wants a number in %c%g, %g], got '%s'\n", a.cmd, lng, lo_open ? '(' : '[', lo, hi,
               a.get(lng).c_str());
  return false;
}

}  // namespace cli
}  // namespace rill
