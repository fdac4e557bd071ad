#!/usr/bin/python3
"""Reference tokenizers, written from their published semantics, independent of rill's C++.

world: the RWKV world tokenizer as the RWKV_TOKENIZER class of BlinkDL/RWKV-LM
       (RWKV-v7/rwkv_v7_demo.py) defines it: per position, the candidate tokens starting with the
       next two bytes, tried longest first (the vocabulary file is sorted by length, and the class
       walks it in reverse); the first one that is a prefix of the remaining text wins; otherwise
       the single byte.
bpe:   a Hugging Face byte-level BPE tokenizer.json as the `tokenizers` library documents it:
       added tokens with normalized=false split the raw text (leftmost-longest); each stretch is
       NFC-normalized (unicodedata); added tokens with normalized=true split it again; the
       ByteLevel pre-tokenizer splits with the GPT-2 regex (the `regex` module gives \\p{L} and
       \\p{N}) and maps bytes to printable characters; each word is merged with GPT-2's original
       bpe() (lowest-rank pair first, all its occurrences at once); decoding maps characters back
       to bytes (a token with any unmapped character decodes to its own UTF-8).

Usage: reference.py (world|bpe) TOKENIZER_FILE (--text FILE | --decode IDS_FILE)
Prints token ids comma-separated on one line (--text), or writes the decoded bytes (--decode).
"""
import json
import sys
import unicodedata

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


# ---- world ---------------------------------------------------------------------------------------
class WorldTokenizer:
    def __init__(self, path):
        self.idx2token = {}
        ordered = []
        with open(path, "r", encoding="utf-8") as f:
            for line in f:
                idx = int(line[: line.index(" ")])
                x = eval(line[line.index(" ") : line.rindex(" ")])  # a Python str or bytes literal
                x = x.encode("utf-8") if isinstance(x, str) else x
                assert isinstance(x, bytes) and len(x) == int(line[line.rindex(" ") :])
                ordered.append(x)
                self.idx2token[idx] = x
        self.token2idx = {v: k for k, v in self.idx2token.items()}
        self.table = [[[] for _ in range(256)] for _ in range(256)]
        self.good = [set() for _ in range(256)]
        self.wlen = [0] * 256
        for s in reversed(ordered):  # longer tokens first
            if len(s) >= 2:
                self.table[s[0]][s[1]].append(s)
                self.wlen[s[0]] = max(self.wlen[s[0]], len(s))
                self.good[s[0]].add(s[1])

    def encode(self, src: bytes):
        out, i = [], 0
        while i < len(src):
            s = src[i : i + 1]
            if i < len(src) - 1 and src[i + 1] in self.good[src[i]]:
                window = src[i : i + self.wlen[src[i]]]
                for cand in self.table[src[i]][src[i + 1]]:
                    if window.startswith(cand):
                        s = cand
                        break
            out.append(self.token2idx[s])
            i += len(s)
        return out

    def decode(self, ids):
        return b"".join(self.idx2token[i] for i in ids)


# ---- byte-level BPE ------------------------------------------------------------------------------
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def get_pairs(word):
    return {(word[i], word[i + 1]) for i in range(len(word) - 1)}


class BpeTokenizer:
    def __init__(self, path):
        import regex  # Debian python3-regex

        j = json.load(open(path, encoding="utf-8"))
        m = j["model"]
        assert m["type"] == "BPE"
        self.vocab = m["vocab"]
        merges = [tuple(x.split(" ")) if isinstance(x, str) else tuple(x) for x in m["merges"]]
        self.ranks = {p: r for r, p in enumerate(merges)}
        self.nfc = (j.get("normalizer") or {}).get("type") == "NFC"
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self.pat = regex.compile(GPT2_PATTERN)
        self.added = {a["content"]: a["id"] for a in j.get("added_tokens", [])}
        self.raw_added = [a["content"] for a in j.get("added_tokens", []) if not a.get("normalized", not a["special"])]
        self.norm_added = [a["content"] for a in j.get("added_tokens", []) if a.get("normalized", not a["special"])]
        self.id_to_token = {v: k for k, v in self.vocab.items()}
        for a in j.get("added_tokens", []):
            self.id_to_token[a["id"]] = a["content"]
        self.cache = {}

    @staticmethod
    def split_added(text, tokens):
        """Yields (is_added, piece): leftmost-longest matches of `tokens` and the text between."""
        i = start = 0
        while i < len(text):
            best = max((t for t in tokens if text.startswith(t, i)), key=len, default=None)
            if best is None:
                i += 1
                continue
            if i > start:
                yield False, text[start:i]
            yield True, best
            i += len(best)
            start = i
        if start < len(text):
            yield False, text[start:]

    def bpe(self, token):  # GPT-2's encoder.py bpe(), on a string of byte characters
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        pairs = get_pairs(word)
        while pairs:
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if bigram not in self.ranks:
                break
            first, second = bigram
            new_word, i = [], 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        self.cache[token] = word
        return word

    def encode(self, text: str):
        ids = []
        for is_added, piece in self.split_added(text, self.raw_added):
            if is_added:
                ids.append(self.added[piece])
                continue
            if self.nfc:
                piece = unicodedata.normalize("NFC", piece)
            for is_added2, part in self.split_added(piece, self.norm_added):
                if is_added2:
                    ids.append(self.added[part])
                    continue
                for w in self.pat.findall(part):
                    chars = "".join(self.byte_encoder[b] for b in w.encode("utf-8"))
                    ids.extend(self.vocab[t] for t in self.bpe(chars))
        return ids

    def decode(self, ids):
        out = b""
        for i in ids:
            t = self.id_to_token[i]
            if all(c in self.byte_decoder for c in t):
                out += bytes(self.byte_decoder[c] for c in t)
            else:
                out += t.encode("utf-8")
        return out


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("world", "bpe") or sys.argv[3] not in ("--text", "--decode"):
        sys.exit(__doc__)
    kind, path, mode, arg = sys.argv[1:]
    tok = WorldTokenizer(path) if kind == "world" else BpeTokenizer(path)
    if mode == "--text":
        data = open(arg, "rb").read()
        ids = tok.encode(data) if kind == "world" else tok.encode(data.decode("utf-8"))
        print(",".join(map(str, ids)))
    else:
        text = open(arg).read().strip()
        ids = [int(x) for x in text.split(",")] if text else []
        sys.stdout.buffer.write(tok.decode(ids))


if __name__ == "__main__":
    main()
