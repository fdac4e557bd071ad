#!/usr/bin/python3
"""rill's tokenizers against the independent references of reference.py.

For the GPT-NeoX tokenizer.json (byte-level BPE), the RWKV world vocabulary and three byte-fallback
BPE tokenizer.json files (byte_fallback/, made by make_byte_fallback.py from the SentencePiece test
model), on every text in texts/ and on seeded random texts mixing the hard cases: `rill tokenize`
must print exactly the reference's ids, and `rill tokenize --decode` must give back the text
(NFC-composed for BPE, which normalizes; for byte fallback the text as prepared, with the prefix's
spaces) and the reference's own decoding. The byte-fallback file made to match the SentencePiece
model must give libsentencepiece's ids (`rill tokenize` on the .model) wherever the text holds no
special token's text (SentencePiece reads those as plain text). Finally it reports the speed on 1 MB
of text (not under --no-speed: a sanitizer build's speed means nothing).

Usage: check_tokenizers.py RILL_BINARY REPO_ROOT WORK_DIR [--no-speed]
"""
import os
import random
import subprocess
import sys
import time
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402

rill, root, work = sys.argv[1:4]
report_speed = "--no-speed" not in sys.argv[4:]
os.makedirs(work, exist_ok=True)
tok_files = {
    "bpe": os.path.join(root, "data/tokenizers/gpt-neox-20b-tokenizer.json"),
    "world": os.path.join(root, "data/tokenizers/rwkv_vocab_v20230424.txt"),
}
refs = {"bpe": reference.BpeTokenizer(tok_files["bpe"]), "world": reference.WorldTokenizer(tok_files["world"])}
fallback_dir = os.path.join(root, "tests/tokenizer/byte_fallback")
for variant in ("from_spm", "prepend", "metaspace_first"):
    tok_files[f"fb-{variant}"] = os.path.join(fallback_dir, f"{variant}.json")
    refs[f"fb-{variant}"] = reference.ByteFallbackBpe(tok_files[f"fb-{variant}"])
spm_model = os.path.join(root, "tests/golden/recurrent_gemma_tied_bf16/tokenizer.model")

texts_dir = os.path.join(root, "tests/tokenizer/texts")
texts = {n[:-4]: open(os.path.join(texts_dir, n), "rb").read() for n in sorted(os.listdir(texts_dir)) if n.endswith(".txt")}

# Seeded random texts from pieces that stress splitting, merging, normalization and added tokens.
pool = (list("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789") + [" ", "  ", "   ", "\n", "\r\n", "\t", "'s", "'ll", "'T"]
        + list(".,;:!?-_()[]{}\"/\\@#$%^&*+=<>|~`") + ["\u0301", "\u0308", "\u0338", "e\u0301", "\u00e9", "\u00a0",
        "\u3000", "\u4e2d", "\u6587", "\u65e5", "\uc548", "\U0001F600", "\u200d", "\U0001F468", "\ufe0f", "\u0663",
        "\u00b2", "\u2028", "\u0085", "<|endoftext|>", "<|padding|>", "<|endoftext|", "|>", " " * 24, " " * 30,
        "\u00df", "\u0130", "\u03a3", "\u05d0", "\u0627", "\u2581", "\u2581\u2581", "thou", " art", "<s>", "</s>",
        "<unk>"])
rng = random.Random(1234)
for k in range(8):
    texts[f"random{k}"] = "".join(rng.choice(pool) for _ in range(rng.randint(50, 2000))).encode("utf-8")

failures = 0
checked = 0
spm_checked = 0
for kind, path in tok_files.items():
    ref = refs[kind]
    for name, data in texts.items():
        src = os.path.join(work, f"{name}.txt")
        open(src, "wb").write(data)
        fallback = kind.startswith("fb-")
        want = ref.encode(data) if kind == "world" else ref.encode(data.decode("utf-8"))
        got = subprocess.run([rill, "tokenize", "-q", "--tokenizer", path, "--text", src], capture_output=True)
        if got.returncode != 0:
            print(f"FAIL {kind} {name}: rill tokenize exited {got.returncode}: {got.stderr.decode(errors='replace')}")
            failures += 1
            continue
        ids = [int(x) for x in got.stdout.decode().strip().split(",")] if got.stdout.strip() else []
        checked += 1
        if ids != want:
            i = next((i for i, (a, b) in enumerate(zip(ids, want)) if a != b), min(len(ids), len(want)))
            print(f"FAIL {kind} {name}: ids differ at {i} of {len(want)}: rill {ids[max(0, i - 3):i + 4]}, "
                  f"reference {want[max(0, i - 3):i + 4]}")
            failures += 1
            continue
        if kind == "fb-from_spm":  # the text without special tokens' texts, through both files
            clean = data
            for s in (b"<s>", b"</s>", b"<unk>", b"<pad>"):
                clean = clean.replace(s, b"")
            csrc = os.path.join(work, f"{name}.clean.txt")
            open(csrc, "wb").write(clean)
            got2 = [subprocess.run([rill, "tokenize", "-q", "--tokenizer", f, "--text", csrc], capture_output=True)
                    for f in (path, spm_model)]
            if any(g.returncode != 0 for g in got2) or got2[0].stdout != got2[1].stdout:
                print(f"FAIL {kind} {name}: libsentencepiece on the .model gives other ids")
                failures += 1
                continue
            spm_checked += 1
        expect = data if kind == "world" else unicodedata.normalize("NFC", data.decode("utf-8")).encode("utf-8")
        if kind == "bpe":  # the NFC of the stretches between raw added tokens, as encoding saw them
            expect = b"".join(p.encode("utf-8") if added else unicodedata.normalize("NFC", p).encode("utf-8")
                              for added, p in reference.BpeTokenizer.split_added(data.decode("utf-8"), ref.raw_added))
        ref_decoded = ref.decode(want)
        if fallback:  # token by token: the text as prepared (the prefix's spaces kept); the library's decoder
            expect = ref.prepared_text(data.decode("utf-8"))  # strips one leading space of a whole decode
            ref_decoded = ref_decoded if not expect.startswith(b" ") else b" " + ref_decoded
        dec = subprocess.run([rill, "tokenize", "-q", "--tokenizer", path, "--decode", ",".join(map(str, ids))],
                             capture_output=True)
        if dec.returncode != 0 or dec.stdout != expect or ref_decoded != expect:
            print(f"FAIL {kind} {name}: decoding does not give the text back (rill {dec.returncode}, "
                  f"{len(dec.stdout)} bytes, want {len(expect)}; reference decode equal: {ref.decode(want) == expect})")
            failures += 1
            continue
        print(f"ok   {kind:18s} {name:14s} {len(data):6d} bytes -> {len(ids):5d} tokens, decoded back exactly")

# Speed on 1 MB: reported, not asserted (timings belong to benchmarks).
big = os.path.join(root, "data/tinyshakespeare.txt")
for kind, path in tok_files.items() if report_speed and not kind.startswith("fb-") else []:
    r = subprocess.run([rill, "tokenize", "--tokenizer", path, "--text", big], capture_output=True)
    print(f"speed {kind}: {r.stderr.decode().strip()}")

print(f"{checked} tokenizations compared ({spm_checked} byte-fallback ones also with libsentencepiece), {failures} failures")
sys.exit(1 if failures else 0)
