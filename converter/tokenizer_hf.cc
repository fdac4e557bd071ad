// Hugging Face `tokenizer.json`, byte-level BPE (the GPT-2 / GPT-NeoX family) or BPE with byte fallback (a
// SentencePiece model rewritten: Llama's, Mistral's): read, checked against what rill's BPE tokenizer
// implements, and turned into the file's tables. Anything that would change
// the tokenization and is not implemented is refused by name rather than silently ignored.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "content.h"

namespace rill {
namespace convert {

namespace {

using json = nlohmann::json;

// The GPT-2 split pattern of the ByteLevel pre-tokenizer (use_regex = true), as the tokenizers library
// defines it.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// GPT-2's bytes_to_unicode: every byte gets a printable code point (printable Latin-1 bytes map to
// themselves, the rest to U+0100 onwards). Returns the code point -> byte table.
std::map<uint32_t, uint8_t> unicode_to_bytes() {
  std::map<uint32_t, uint8_t> m;
  uint32_t extra = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    m[printable ? b : 256 + extra++] = static_cast<uint8_t>(b);
  }
  return m;
}

// Next code point of UTF-8 `s` at *i (advanced); false if malformed.
bool next_cp(const std::string& s, size_t* i, uint32_t* cp) {
  const auto c = static_cast<unsigned char>(s[*i]);
  int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
  if (n < 0 || *i + static_cast<size_t>(n) >= s.size()) return false;
  *cp = n == 0 ? c : c & (0x3F >> n);
  for (int k = 1; k <= n; ++k) {
    const auto d = static_cast<unsigned char>(s[*i + k]);
    if ((d & 0xC0) != 0x80) return false;
    *cp = (*cp << 6) | (d & 0x3F);
  }
  *i += static_cast<size_t>(n) + 1;
  return true;
}

// The ByteLevel decoder on one token: every code point through the byte table, or, if any is not in
// it, the token's own UTF-8 bytes (the tokenizers library's rule).
std::string byte_level_decode(const std::string& tok, const std::map<uint32_t, uint8_t>& table) {
  std::string out;
  size_t i = 0;
  while (i < tok.size()) {
    uint32_t cp = 0;
    if (!next_cp(tok, &i, &cp)) return tok;
    auto it = table.find(cp);
    if (it == table.end()) return tok;
    out += static_cast<char>(it->second);
  }
  return out;
}

bool is_null_or(const json& j, const char* key, const json& allowed) {
  return !j.contains(key) || j[key].is_null() || j[key] == allowed;
}

// A token id of the file (`what` "s"): a non-negative integer below the model's vocab_size rows.
uint32_t checked_id(const std::string& s, const json& idj, const char* what, uint64_t vocab_size,
                    const std::string& path) {
  if (!idj.is_number_unsigned())
    throw ConvertError(path + ": " + what + " \"" + s + "\": id is not a non-negative integer");
  const uint64_t id = idj.get<uint64_t>();
  if (id >= vocab_size)
    throw ConvertError(path + ": " + what + " \"" + s + "\" has id " + std::to_string(id) + ", the model has " +
                       std::to_string(vocab_size) + " embedding rows");
  return static_cast<uint32_t>(id);
}

// One entry of added_tokens.
struct AddedEntry {
  uint32_t id;
  std::string content;
  bool special, normalized;  // normalized: as the file says, else the library's default (not special)
};

// added_tokens (none if absent): each an object with an id (through add_id, which checks it against the
// model and makes room for it) and non-empty content; lstrip, rstrip and single_word are refused.
template <class AddId>
std::vector<AddedEntry> read_added_tokens(const json& j, AddId&& add_id, const std::string& path) {
  auto bad = [&](const std::string& why) { return ConvertError(path + ": " + why); };
  std::vector<AddedEntry> out;
  if (!j.contains("added_tokens")) return out;
  if (!j["added_tokens"].is_array()) throw bad("added_tokens is not an array");
  for (const json& a : j["added_tokens"]) {
    if (!a.is_object() || !a.contains("content") || !a["content"].is_string() || !a.contains("id"))
      throw bad("added_tokens: an entry without id and content");
    const std::string content = a["content"].get<std::string>();
    const uint32_t id = add_id(content, a["id"], "added token");
    for (const char* flag : {"lstrip", "rstrip", "single_word"})
      if (a.value(flag, false)) throw bad("added token \"" + content + "\": " + flag + " = true is not supported");
    if (content.empty()) throw bad("added token " + std::to_string(id) + " is empty");
    const bool special = a.value("special", false);
    out.push_back({id, content, special, a.value("normalized", !special)});
  }
  return out;
}

// model.merges, in rank order ("a b" strings, as older files write them, or [a, b] pairs) of tokens as the
// vocabulary spells them, sorted by (left, right) for the runtime's binary search; a pair listed twice
// or a token not in the vocabulary is refused.
std::vector<BpeTokenizer::Merge> read_merges(const json& model, const std::map<std::string, uint32_t>& ids,
                                             const std::string& path) {
  auto bad = [&](const std::string& why) { return ConvertError(path + ": " + why); };
  if (!model.contains("merges") || !model["merges"].is_array()) throw bad("model.merges is not an array");
  const json& merges = model["merges"];
  std::vector<BpeTokenizer::Merge> out;
  out.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    std::string a, b;
    const json& m = merges[r];
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        throw bad("merge " + std::to_string(r) + " \"" + s + "\" is not two tokens separated by one space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      throw bad("merge " + std::to_string(r) + " is neither \"a b\" nor [a, b]");
    }
    auto ia = ids.find(a), ib = ids.find(b), im = ids.find(a + b);
    if (ia == ids.end() || ib == ids.end() || im == ids.end())
      throw bad("merge " + std::to_string(r) + " (\"" + a + "\", \"" + b + "\") names a token not in the vocab");
    out.push_back({ia->second, ib->second, im->second, static_cast<uint32_t>(r)});
  }
  std::sort(out.begin(), out.end(), [](const BpeTokenizer::Merge& x, const BpeTokenizer::Merge& y) {
    return x.left != y.left ? x.left < y.left : x.right < y.right;
  });
  for (size_t k = 1; k < out.size(); ++k)
    if (out[k].left == out[k - 1].left && out[k].right == out[k - 1].right)
      throw bad("merges " + std::to_string(std::min(out[k].rank, out[k - 1].rank)) + " and " +
                std::to_string(std::max(out[k].rank, out[k - 1].rank)) + " are the same pair");
  return out;
}

// The steps of a normalizer or decoder: a Sequence's list (under `key`), or the one step itself.
std::vector<json> sequence_steps(const json& n, const char* key) {
  if (n.is_object() && n.value("type", "") == "Sequence" && n.contains(key) && n[key].is_array())
    return std::vector<json>(n[key].begin(), n[key].end());
  return {n};
}

// U+2581, which SentencePiece pieces hold for a space.
constexpr const char* kSpaceMark = "\u2581";

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t i = s.find(from); i != std::string::npos; i = s.find(from, i + to.size())) s.replace(i, from.size(), to);
  return s;
}

// A byte-fallback BPE tokenizer.json (a SentencePiece model rewritten: Llama's, Mistral's). What rill
// implements: the Prepend("▁") / Replace(" ", "▁") normalizers or the Metaspace pre-tokenizer (not
// splitting), merges by rank over characters with <0xNN> tokens for characters the vocabulary lacks,
// added tokens; decoders that turn "▁" into spaces and byte tokens into bytes. Anything else is refused.
BpeTokenizer read_byte_fallback(const json& j, const std::string& path, uint64_t vocab_size) {
  auto bad = [&](const std::string& why) { return ConvertError(path + ": " + why); };
  const json& model = j["model"];
  if (!is_null_or(model, "dropout", json()) && !(model["dropout"].is_number() && model["dropout"] == 0))
    throw bad("model.dropout is set; BPE dropout is not supported");
  if (!is_null_or(model, "continuing_subword_prefix", "")) throw bad("model.continuing_subword_prefix is not supported");
  if (!is_null_or(model, "end_of_word_suffix", "")) throw bad("model.end_of_word_suffix is not supported");
  if (!is_null_or(model, "ignore_merges", false)) throw bad("model.ignore_merges is not supported");
  BpeTokenizer t;
  t.byte_fallback = true;
  t.source = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  // How the text is prepared: normalizers Prepend("▁") and Replace(" ", "▁"), or Metaspace.
  auto is_replace = [](const json& n) {
    return n.is_object() && n.value("type", "") == "Replace" && n.contains("pattern") && n["pattern"].is_object() &&
           n["pattern"].value("String", "") == " " && n.value("content", "") == kSpaceMark;
  };
  auto is_prepend = [](const json& n) {
    return n.is_object() && n.value("type", "") == "Prepend" && n.value("prepend", "") == kSpaceMark;
  };
  bool replace = false, prepend = false;
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const std::vector<json> steps = sequence_steps(j["normalizer"], "normalizers");
    for (size_t k = 0; k < steps.size(); ++k) {
      if (is_replace(steps[k]) && !replace) replace = true;
      else if (is_prepend(steps[k]) && !prepend && !replace) prepend = true;
      else throw bad("normalizer " + steps[k].dump().substr(0, 120) +
                     " is not supported with byte fallback (Prepend(\"\u2581\") then Replace(\" \", \"\u2581\"))");
    }
  }
  uint8_t prefix = prepend ? static_cast<uint8_t>(fb::SpacePrefix::Always) : 0;
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null()) {
    const json& p = j["pre_tokenizer"];
    if (!p.is_object() || p.value("type", "") != "Metaspace")
      throw bad("pre_tokenizer " + p.dump().substr(0, 120) + " is not supported with byte fallback (none or Metaspace)");
    if (p.value("replacement", std::string(kSpaceMark)) != kSpaceMark)
      throw bad("pre_tokenizer Metaspace: replacement other than U+2581");
    if (p.value("split", false)) throw bad("pre_tokenizer Metaspace split = true is not supported");
    if (replace || prepend) throw bad("both a space normalizer and the Metaspace pre-tokenizer: not supported");
    std::string scheme = p.contains("prepend_scheme") && p["prepend_scheme"].is_string()
                             ? p["prepend_scheme"].get<std::string>()
                             : (p.value("add_prefix_space", true) ? "always" : "never");
    if (scheme == "always") prefix = static_cast<uint8_t>(fb::SpacePrefix::UnlessSpace);
    else if (scheme == "first") prefix = static_cast<uint8_t>(fb::SpacePrefix::FirstUnlessSpace);
    else if (scheme != "never") throw bad("pre_tokenizer Metaspace prepend_scheme \"" + scheme + "\" is not supported");
    replace = true;
  }
  if (!replace) throw bad("with byte fallback, spaces must become U+2581 (a Replace normalizer or Metaspace)");
  t.space_prefix = prefix;
  // Decoding is each token's text: "▁" as a space, <0xNN> as the byte. Decoders that do that (and the
  // Strip of the prefix's space, which token-by-token decoding keeps) are accepted.
  if (j.contains("decoder") && !j["decoder"].is_null()) {
    for (const json& s : sequence_steps(j["decoder"], "decoders")) {
      const std::string type = s.is_object() ? s.value("type", "") : "";
      const bool ok = type == "ByteFallback" || type == "Fuse" || type == "Metaspace" ||
                      (type == "Strip" && s.value("content", "") == " " && s.value("stop", 0) == 0) ||
                      (type == "Replace" && s.contains("pattern") && s["pattern"].is_object() &&
                       s["pattern"].value("String", "") == kSpaceMark && s.value("content", "") == " ");
      if (!ok) throw bad("decoder " + s.dump().substr(0, 120) + " is not supported with byte fallback");
    }
  }
  // Vocabulary: pieces and their texts; the <0xNN> byte tokens.
  if (!model.contains("vocab") || !model["vocab"].is_object()) throw bad("model.vocab is not an object");
  std::vector<bool> seen, is_byte;
  std::map<std::string, uint32_t> ids;
  auto add_id = [&](const std::string& s, const json& idj, const char* what) {
    const uint32_t id = checked_id(s, idj, what, vocab_size, path);
    if (id >= t.vocab.size()) t.vocab.resize(id + 1), seen.resize(id + 1, false), is_byte.resize(id + 1, false);
    return id;
  };
  t.byte_tokens.assign(256, kNoToken);
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    const std::string& piece = it.key();
    const uint32_t id = add_id(piece, it.value(), "vocab token");
    if (seen[id]) throw bad("vocab: id " + std::to_string(id) + " appears twice");
    seen[id] = true;
    ids[piece] = id;
    unsigned byte = 0;
    if (piece.size() == 6 && piece.compare(0, 3, "<0x") == 0 && piece[5] == '>' &&
        std::sscanf(piece.c_str() + 3, "%2x", &byte) == 1 && std::isxdigit(static_cast<unsigned char>(piece[3])) &&
        std::isxdigit(static_cast<unsigned char>(piece[4]))) {
      if (t.byte_tokens[byte] != kNoToken) throw bad("vocab: two tokens for byte " + piece);
      t.byte_tokens[byte] = id;
      t.vocab[id] = std::string(1, static_cast<char>(byte));
      is_byte[id] = true;
    } else {
      t.vocab[id] = replace_all(piece, kSpaceMark, " ");
    }
  }
  for (uint32_t b = 0; b < 256; ++b)
    if (t.byte_tokens[b] == kNoToken) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "<0x%02X>", b);
      throw bad(std::string("byte fallback without a ") + hex + " token: every byte needs one");
    }
  // Added tokens: matched in the text, their text is their content (normalized ones: as the prepared
  // text holds it, "▁" a space).
  for (const AddedEntry& a : read_added_tokens(j, add_id, path)) {
    if (is_byte[a.id]) throw bad("added token \"" + a.content + "\" is a byte token");
    seen[a.id] = true;
    t.vocab[a.id] = a.normalized ? replace_all(a.content, kSpaceMark, " ") : a.content;
    t.added.push_back({a.id, a.special, a.normalized});
  }
  std::vector<bool> added_id(t.vocab.size(), false);
  for (const BpeTokenizer::Added& a : t.added) added_id[a.id] = true;
  t.split_before_space = true;
  for (uint32_t id = 0; id < t.vocab.size(); ++id)
    if (seen[id] && !is_byte[id] && !added_id[id] && !t.vocab[id].empty()) {
      t.chars.push_back(id);
      const std::string& v = t.vocab[id];
      for (size_t i = 1; i < v.size(); ++i)
        if (v[i] == ' ' && v[i - 1] != ' ') t.split_before_space = false;
    }
  t.merges = read_merges(model, ids, path);
  // Post-processor: none, or a template that only puts special tokens before the text (Llama's <s>,
  // which rill adds itself as the model's bos).
  if (j.contains("post_processor") && !j["post_processor"].is_null()) {
    const json& pp = j["post_processor"];
    bool ok = pp.is_object() && pp.value("type", "") == "TemplateProcessing" && pp.contains("single") &&
              pp["single"].is_array();
    int32_t bos = -1;
    bool seen_a = false;
    for (size_t k = 0; ok && k < pp["single"].size(); ++k) {
      const json& e = pp["single"][k];
      if (e.contains("Sequence") && !seen_a) {
        seen_a = true;
      } else if (e.contains("SpecialToken") && !seen_a && k == 0 && e["SpecialToken"].is_object()) {
        auto it = ids.find(e["SpecialToken"].value("id", ""));
        for (const auto& ad : t.added)
          if (t.vocab[ad.id] == e["SpecialToken"].value("id", "")) bos = static_cast<int32_t>(ad.id);
        if (bos < 0 && it != ids.end()) bos = static_cast<int32_t>(it->second);
        ok = bos >= 0;
      } else {
        ok = false;
      }
    }
    if (!ok || !seen_a)
      throw bad("post_processor " + pp.dump().substr(0, 120) +
                " is not supported (none, or a template with only a start token before the text)");
    t.bos_id = bos;
  }
  for (const auto& a : t.added)
    if (a.special && (t.vocab[a.id] == "</s>" || t.vocab[a.id] == "<|endoftext|>" || t.vocab[a.id] == "<|end_of_text|>"))
      t.eos_id = static_cast<int32_t>(a.id);
  return t;
}

}  // namespace

BpeTokenizer read_hf_tokenizer(const std::string& path, uint64_t vocab_size) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ConvertError(path + ": cannot read");
  std::stringstream ss;
  ss << f.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  auto bad = [&](const std::string& why) { return ConvertError(path + ": " + why); };
  if (j.is_discarded() || !j.is_object()) throw bad("not a JSON object");
  if (!j.contains("model") || !j["model"].is_object()) throw bad("no \"model\" object");
  const json& model = j["model"];
  if (!model.contains("type") || model["type"] != "BPE")
    throw bad("model type " + (model.contains("type") ? model["type"].dump() : std::string("(none)")) +
              " is not supported (rill reads byte-level BPE)");
  if (model.contains("byte_fallback") && model["byte_fallback"] == true) return read_byte_fallback(j, path, vocab_size);
  // Model options that change the tokenization.
  if (!is_null_or(model, "dropout", json()) && !(model["dropout"].is_number() && model["dropout"] == 0))
    throw bad("model.dropout is set; BPE dropout is not supported");
  if (!is_null_or(model, "unk_token", json())) throw bad("model.unk_token is set; byte-level BPE needs none");
  if (!is_null_or(model, "continuing_subword_prefix", "")) throw bad("model.continuing_subword_prefix is not supported");
  if (!is_null_or(model, "end_of_word_suffix", "")) throw bad("model.end_of_word_suffix is not supported");
  if (!is_null_or(model, "byte_fallback", false)) throw bad("model.byte_fallback is neither true nor false");
  if (!is_null_or(model, "ignore_merges", false)) throw bad("model.ignore_merges is not supported");

  BpeTokenizer t;
  t.source = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  // Normalizer: none or NFC.
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const json& n = j["normalizer"];
    if (!n.is_object() || n.value("type", "") != "NFC")
      throw bad("normalizer " + n.dump() + " is not supported (none or NFC)");
    t.nfc = true;
  }
  // Pre-tokenizer: ByteLevel with the GPT-2 pattern, or Split(Regex, Isolated) then ByteLevel without.
  if (!j.contains("pre_tokenizer") || !j["pre_tokenizer"].is_object()) throw bad("no pre_tokenizer (ByteLevel expected)");
  const json& pt = j["pre_tokenizer"];
  auto check_byte_level = [&](const json& bl, bool want_regex) {
    if (bl.value("add_prefix_space", false)) throw bad("pre_tokenizer ByteLevel add_prefix_space = true is not supported");
    if (bl.value("use_regex", true) != want_regex)
      throw bad(std::string("pre_tokenizer ByteLevel use_regex = ") + (want_regex ? "false" : "true") +
                " is not supported here");
  };
  if (pt.value("type", "") == "ByteLevel") {
    check_byte_level(pt, true);
    t.pattern = kGpt2Pattern;
  } else if (pt.value("type", "") == "Sequence" && pt.contains("pretokenizers") && pt["pretokenizers"].is_array() &&
             pt["pretokenizers"].size() == 2 && pt["pretokenizers"][0].value("type", "") == "Split" &&
             pt["pretokenizers"][1].value("type", "") == "ByteLevel") {
    const json& sp = pt["pretokenizers"][0];
    if (!sp.contains("pattern") || !sp["pattern"].is_object() || !sp["pattern"].contains("Regex") ||
        !sp["pattern"]["Regex"].is_string())
      throw bad("pre_tokenizer Split: only a Regex pattern is supported");
    if (sp.value("behavior", "") != "Isolated" || sp.value("invert", false))
      throw bad("pre_tokenizer Split: only behavior Isolated without invert is supported");
    check_byte_level(pt["pretokenizers"][1], false);
    t.pattern = sp["pattern"]["Regex"].get<std::string>();
  } else {
    throw bad("pre_tokenizer " + pt.dump().substr(0, 120) + " is not supported (ByteLevel expected)");
  }
  if (j.contains("decoder") && !j["decoder"].is_null() && j["decoder"].value("type", "") != "ByteLevel")
    throw bad("decoder " + j["decoder"].dump().substr(0, 120) + " is not supported (ByteLevel expected)");
  if (j.contains("post_processor") && !j["post_processor"].is_null() &&
      j["post_processor"].value("type", "") != "ByteLevel")
    throw bad("post_processor " + j["post_processor"].value("type", std::string("?")) +
              " is not supported (it would add tokens; ByteLevel or none expected)");

  // Vocabulary: token string -> id; each id's bytes through the ByteLevel decoder.
  if (!model.contains("vocab") || !model["vocab"].is_object()) throw bad("model.vocab is not an object");
  const auto table = unicode_to_bytes();
  // t.vocab and seen grow to the largest id read (the caller pads to the model's rows).
  std::vector<bool> seen;
  std::map<std::string, uint32_t> ids;
  auto add_id = [&](const std::string& s, const json& idj, const char* what) {
    const uint32_t id = checked_id(s, idj, what, vocab_size, path);
    if (id >= t.vocab.size()) t.vocab.resize(id + 1), seen.resize(id + 1, false);
    return id;
  };
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    const uint32_t id = add_id(it.key(), it.value(), "vocab token");
    if (seen[id]) throw bad("vocab: id " + std::to_string(id) + " appears twice");
    seen[id] = true;
    ids[it.key()] = id;
    t.vocab[id] = byte_level_decode(it.key(), table);
  }
  // Added tokens: matched in the text before splitting; their text is their content.
  for (const AddedEntry& a : read_added_tokens(j, add_id, path)) {
    if (byte_level_decode(a.content, table) != a.content)
      throw bad("added token \"" + a.content + "\" changes under byte-level decoding; not supported");
    if (seen[a.id] && t.vocab[a.id] != a.content)
      throw bad("added token " + std::to_string(a.id) + " \"" + a.content + "\" differs from vocab entry " +
                std::to_string(a.id));
    seen[a.id] = true;
    t.vocab[a.id] = a.content;
    t.added.push_back({a.id, a.special, a.normalized});
  }
  // Single bytes: every byte that valid UTF-8 can hold must have its token, or some text could not be
  // encoded (0xC0, 0xC1 and 0xF5-0xFF never occur; GPT-NeoX's vocabulary leaves them out).
  t.byte_tokens.assign(256, kNoToken);
  for (uint32_t b = 0; b < 256; ++b) {
    std::string ch;
    for (const auto& [cp, byte] : table)
      if (byte == b) put_utf8(cp, &ch);
    auto it = ids.find(ch);
    if (it != ids.end()) {
      t.byte_tokens[b] = it->second;
    } else if (!(b == 0xC0 || b == 0xC1 || b >= 0xF5)) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", b);
      throw bad(std::string("vocab has no token for byte ") + hex + " (\"" + ch + "\"); not a byte-level BPE vocabulary");
    }
  }
  t.merges = read_merges(model, ids, path);
  // The end-of-text token, for generation to stop at: the special added token named so.
  for (const auto& a : t.added)
    if (a.special && (t.vocab[a.id] == "<|endoftext|>" || t.vocab[a.id] == "</s>" || t.vocab[a.id] == "<|end_of_text|>"))
      t.eos_id = static_cast<int32_t>(a.id);
  return t;
}

}  // namespace convert
}  // namespace rill
