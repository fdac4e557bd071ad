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
fallback: a Hugging Face tokenizer.json with byte-fallback BPE (a SentencePiece model rewritten, as
       Llama's and Mistral's): added tokens with normalized=false split the raw text; each stretch
       is normalized (Prepend("▁") when not empty, Replace(" ", "▁")); added tokens with
       normalized=true split it again; the Metaspace pre-tokenizer, where the file has it, turns
       " " into "▁" and puts "▁" in front of each remaining piece unless it starts with one
       (prepend_scheme "always"; "first": only the piece at the start of the text); each piece is
       one word; each character is the token of that character, or else the
       <0xNN> tokens of its UTF-8 bytes; merges by rank, as bpe() above. Decoding: "▁" is a space,
       <0xNN> the byte, and one leading space is stripped (the decoder's Strip).

Usage: reference.py (world|bpe|fallback) TOKENIZER_FILE (--text FILE | --decode IDS_FILE)
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


def merge_loop(word, ranks):
    """GPT-2's encoder.py bpe() on a tuple of symbols: the lowest-rank adjacent pair merges, all its
    occurrences at once, until no pair has a rank."""
    pairs = get_pairs(word)
    while pairs:
        bigram = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if bigram not in ranks:
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
    return word


def load_bpe_json(tok, path):
    """A tokenizer.json's BPE vocabulary, merge ranks and added tokens onto `tok`; returns the JSON."""
    j = json.load(open(path, encoding="utf-8"))
    m = j["model"]
    assert m["type"] == "BPE"
    tok.vocab = m["vocab"]
    merges = [tuple(x.split(" ")) if isinstance(x, str) else tuple(x) for x in m["merges"]]
    tok.ranks = {p: r for r, p in enumerate(merges)}
    added = j.get("added_tokens", [])
    tok.added = {a["content"]: a["id"] for a in added}
    tok.raw_added = [a["content"] for a in added if not a.get("normalized", not a["special"])]
    tok.norm_added = [a["content"] for a in added if a.get("normalized", not a["special"])]
    tok.id_to_token = {v: k for k, v in tok.vocab.items()}
    for a in added:
        tok.id_to_token[a["id"]] = a["content"]
    return j


class BpeTokenizer:
    def __init__(self, path):
        import regex  # Debian python3-regex

        j = load_bpe_json(self, path)
        self.nfc = (j.get("normalizer") or {}).get("type") == "NFC"
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self.pat = regex.compile(GPT2_PATTERN)
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
        if token not in self.cache:
            self.cache[token] = merge_loop(tuple(token), self.ranks)
        return self.cache[token]

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


class ByteFallbackBpe:
    def __init__(self, path):
        j = load_bpe_json(self, path)
        assert j["model"].get("byte_fallback")
        norm, pre = j.get("normalizer"), j.get("pre_tokenizer")
        steps = (norm.get("normalizers", []) if norm and norm["type"] == "Sequence" else [norm] if norm else [])
        self.prepend = any(s["type"] == "Prepend" for s in steps)
        self.replace = any(s["type"] == "Replace" for s in steps)
        self.metaspace = pre["prepend_scheme"] if pre and pre["type"] == "Metaspace" else None

    def normalize(self, piece):
        if self.replace:
            piece = piece.replace(" ", "\u2581")
        if self.prepend and piece:
            piece = "\u2581" + piece
        return piece

    def pre_tokenize(self, piece, at_start):
        if self.metaspace:
            piece = piece.replace(" ", "\u2581")
            if not piece.startswith("\u2581") and (self.metaspace == "always" or (self.metaspace == "first" and at_start)):
                piece = "\u2581" + piece
        return piece

    def word_ids(self, word):
        symbols = []
        for ch in word:  # a character's token, or its bytes' tokens
            if ch in self.vocab:
                symbols.append(ch)
            else:
                symbols.extend(f"<0x{b:02X}>" for b in ch.encode("utf-8"))
        return [self.vocab[t] for t in merge_loop(tuple(symbols), self.ranks)]

    def stretches(self, text):
        """(is_added, piece, word or None) in text order: the added tokens, and the words as BPE sees them."""
        pos = 0
        for is_added, piece in BpeTokenizer.split_added(text, self.raw_added):
            start = pos
            pos += len(piece)
            if is_added:
                yield True, piece, None
                continue
            first = True
            for is_added2, part in BpeTokenizer.split_added(self.normalize(piece), self.norm_added):
                if is_added2:
                    yield True, part, None
                else:
                    yield False, part, self.pre_tokenize(part, start == 0 and first)
                first = False

    def encode(self, text):
        ids = []
        for is_added, piece, prepared in self.stretches(text):
            ids.extend([self.added[piece]] if is_added else self.word_ids(prepared))
        return ids

    def prepared_text(self, text):
        """What token-by-token decoding gives back: the stretches as prepared, U+2581 as spaces."""
        out = []
        for is_added, piece, word in self.stretches(text):
            if not is_added:
                out.append(word.replace("\u2581", " "))
            else:
                out.append(piece.replace("\u2581", " ") if piece in self.norm_added else piece)
        return "".join(out).encode("utf-8")

    def decode(self, ids):  # the tokenizers library's decoder chain, Strip included
        out = b""
        for i in ids:
            t = self.id_to_token[i]
            if len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
                out += bytes([int(t[3:5], 16)])
            else:
                out += t.replace("\u2581", " ").encode("utf-8")
        return out[1:] if out.startswith(b" ") else out


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("world", "bpe", "fallback") or sys.argv[3] not in ("--text", "--decode"):
        sys.exit(__doc__)
    kind, path, mode, arg = sys.argv[1:]
    tok = {"world": WorldTokenizer, "bpe": BpeTokenizer, "fallback": ByteFallbackBpe}[kind](path)
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
