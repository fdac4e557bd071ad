#!/usr/bin/python3
"""Hugging Face tokenizer.json files with byte-fallback BPE, made from a SentencePiece BPE model the way
the transformers library's LlamaConverter rewrites one (convert_slow_tokenizer.py): the vocabulary is
the pieces in id order; the merges are every split of a piece into two pieces of the vocabulary,
ordered by the merged piece's score (highest first), ties by the two pieces' ids; byte_fallback and
fuse_unk on; the decoder turns U+2581 back into spaces, byte pieces into bytes, and strips the
leading space the prefix added.

Usage: make_byte_fallback.py TOKENIZER_MODEL OUT_DIR

Writes three files that differ only in how the text is prepared:
  from_spm.json         as the model's normalizer spec says (add_dummy_prefix: Prepend("▁"), and
                        Replace(" ", "▁")): the same tokenizer as the .model, in Hugging Face's form;
  prepend.json          Llama-2's normalizer: Prepend("▁") then Replace(" ", "▁");
  metaspace_first.json  no normalizer, the Metaspace pre-tokenizer with prepend_scheme "first".
The last two also have an added token matched after normalization (prepend.json "▁thou", which the
normalized text spells with U+2581; metaspace_first.json "art"), with the next free id.
The .model is parsed here with a small protobuf reader (ModelProto: pieces = 1 {piece = 1, score = 2,
type = 3}; normalizer_spec = 3 {add_dummy_prefix = 3}).
"""
import json
import os
import struct
import sys


def varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def fields(b):
    """Yields (field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        yield num, wt, v


def read_model(path):
    data = open(path, "rb").read()
    pieces, add_dummy_prefix = [], True
    for num, _, v in fields(data):
        if num == 1:
            p = {"piece": "", "score": 0.0, "type": 1}
            for n2, _, v2 in fields(v):
                if n2 == 1:
                    p["piece"] = v2.decode("utf-8")
                elif n2 == 2:
                    p["score"] = struct.unpack("<f", v2)[0]
                elif n2 == 3:
                    p["type"] = v2
            pieces.append(p)
        elif num == 3:
            for n2, _, v2 in fields(v):
                if n2 == 3:
                    add_dummy_prefix = bool(v2)
    return pieces, add_dummy_prefix


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    pieces, add_dummy_prefix = read_model(sys.argv[1])
    out = sys.argv[2]
    vocab = {p["piece"]: i for i, p in enumerate(pieces)}
    # LlamaConverter's SentencePieceExtractor: merges from the vocabulary and the scores.
    scores = {p["piece"]: p["score"] for p in pieces}
    merges = []
    for merged, score in scores.items():
        local = [(merged[:k], merged[k:], score) for k in range(1, len(merged))
                 if merged[:k] in vocab and merged[k:] in vocab]
        local.sort(key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges.extend(local)
    merges.sort(key=lambda x: x[2], reverse=True)  # stable: ties keep the order above
    types = {1: "normal", 2: "unknown", 3: "control", 4: "user_defined", 6: "byte"}
    unk = next(p["piece"] for p in pieces if p["type"] == 2)
    added = [{"id": i, "content": p["piece"], "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for i, p in enumerate(pieces) if types.get(p["type"]) in ("unknown", "control")]
    model = {"type": "BPE", "dropout": None, "unk_token": unk, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
             "vocab": vocab, "merges": [[a, b] for a, b, _ in merges]}
    decoder = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    replace = {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}
    prepend = {"type": "Prepend", "prepend": "\u2581"}
    def norm_added(content):
        return [{"id": len(pieces), "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": True, "special": False}]
    variants = {
        "from_spm.json": ({"type": "Sequence", "normalizers": ([prepend] if add_dummy_prefix else []) + [replace]}, None,
                          []),
        "prepend.json": ({"type": "Sequence", "normalizers": [prepend, replace]}, None, norm_added("\u2581thou")),
        "metaspace_first.json": (None, {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                                        "split": False}, norm_added("art")),
    }
    os.makedirs(out, exist_ok=True)
    for name, (normalizer, pre, extra) in variants.items():
        j = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added + extra, "normalizer": normalizer,
             "pre_tokenizer": pre, "post_processor": None, "decoder": decoder, "model": model}
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(j, f, ensure_ascii=False, indent=1)
    print(f"{len(pieces)} pieces, {len(merges)} merges, add_dummy_prefix {add_dummy_prefix}: {', '.join(variants)}")


if __name__ == "__main__":
    main()
