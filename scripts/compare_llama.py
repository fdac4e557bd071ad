#!/usr/bin/python3
"""rill against llama.cpp on twin random-weight models, side by side, alternating.

For each shape (the real Mamba-130m, Mamba2-130m, RWKV7-0.1B, Granite 4.0-H 1B and Mamba-1.4B configs in
tests/checkpoints/; --shapes granite or mamba1.4b adds the last two, which take minutes to write and convert), a
random checkpoint is written once (tests/checkpoints/make_random.py, fixed seed) and converted twice:
by `rill convert --dtype q8|q4` and, for llama.cpp, by its own convert_hf_to_gguf.py (f16) and
llama-quantize (Q8_0, Q4_0). Both runtimes then see the same weights. Each round runs `rill bench`
and `llama-bench` once per shape, dtype and thread count, one after the other, so bandwidth drift
between runs hits both; the table gives the median over rounds and the ratio rill / llama.cpp.

llama.cpp is not a dependency of rill. Point --llama at a llama.cpp checkout with llama-bench and
llama-quantize built (in BUILD, default build/bin). One way to get one without network access to
GitHub: the npm package node-llama-cpp@3.22.1 carries the llama.cpp source as a git bundle:

    npm pack node-llama-cpp@3.22.1 && tar xzf node-llama-cpp-3.22.1.tgz
    git clone package/llama/gitRelease.bundle llama.cpp        # commit de3ff815
    cmake -S llama.cpp -B llama.cpp/build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF
    cmake --build llama.cpp/build -j --target llama-bench llama-quantize

On a CPU that reports AMX but whose kernel (or hypervisor) does not enable it, -DGGML_NATIVE=ON
builds AMX kernels that die with SIGILL: build with -DGGML_NATIVE=OFF -DGGML_AVX512=ON
-DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX2=ON -DGGML_FMA=ON
-DGGML_F16C=ON instead.

llama.cpp's converter needs torch and numpy (Debian: python3-torch, python3-numpy); `transformers`
and `tqdm`, which it imports but does not need for these checkpoints, are stubbed here.

--quality compares the weights instead of the speed: rill's q4 against llama.cpp's Q4_0 made by
`llama-quantize --pure` (every matrix Q4_0, none promoted to Q6_K), read back with gguf-py.
  - per tensor, over the tensors rill stores as q4: the reconstruction error, RMS(w - w') / RMS(w)
    (rill's from its converter's --report, Q4_0's from gguf-py's dequantization);
  - the logits' KL divergence from the f32 model over --kl-tokens random token ids, and top-1 agreement:
    rill q4 as it runs (q4 weights, int8 activations), and the f32 model with those same tensors replaced
    by their Q4_0 reconstructions (so Q4_0 is charged with its weight error only, not llama.cpp's
    Q8_0 activation rounding).

--streams 1,4,16 compares many streams advanced together instead: `rill bench --streams` (one
Batch::step advances every stream a token) against llama-batched-bench with as many parallel sequences
(-npp 0 -ntg N -npl ...), aggregate tokens/s over all streams (llama-batched-bench must be built too).

usage: scripts/compare_llama.py --llama DIR [--rill build/bin/rill] [--work /tmp/rill-compare]
       [--shapes mamba,mamba2,rwkv7] [--dtypes q8,q4] [--threads 1,2] [--rounds 3]
       [--prefill 512] [--tokens 128] [--json FILE]
       scripts/compare_llama.py --llama DIR --quality [--shapes ...] [--kl-tokens 256] [--json FILE]
       scripts/compare_llama.py --llama DIR --streams 1,4,16 [--shapes ...] [--dtypes ...] [--threads ...]
       [--rounds 3] [--tokens 128] [--json FILE]
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = {  # name: (tests/checkpoints folder, HF architecture for llama.cpp's converter, label)
    "mamba": ("mamba-130m-hf", "MambaForCausalLM", "mamba-130m"),
    "mamba2": ("mamba2-130m-hf", "Mamba2ForCausalLM", "mamba2-130m"),
    "rwkv7": ("rwkv7-0.1B-world", "RWKV7ForCausalLM", "rwkv7-0.1b"),
    "granite": ("granite-4.0-h-1b", "GraniteMoeHybridForCausalLM", "granite-4.0-h-1b"),
    "mamba1.4b": ("mamba-1.4b-hf", "MambaForCausalLM", "mamba-1.4b"),
    "rwkv6": ("rwkv6-world-1.6b-hf", "Rwkv6ForCausalLM", "rwkv6-1.6b"),
}
GGUF_TYPE = {"q8": "Q8_0", "q4": "Q4_0"}
# Tensors rill's converter derives from their source before quantizing (--quality cannot compare them
# with llama.cpp's quantization of the source; the KL comparison still includes them).
DERIVED = {("rwkv7", "embedding"): "rill folds layer 0's pre_norm (ln0) into the rows it quantizes"}

# Stand-ins for modules llama.cpp's converter imports but these checkpoints do not use, and the
# dtypes a Debian torch may lack (only used as dictionary keys there).
STUB_TRANSFORMERS = """
class AutoConfig:
    @staticmethod
    def from_pretrained(*a, **k):
        raise RuntimeError("transformers is not installed")
AutoTokenizer = AutoConfig
"""
STUB_TQDM = """
class tqdm:
    def __init__(self, iterable=None, *a, **k): self.iterable = iterable
    def __iter__(self): return iter(self.iterable)
    def __enter__(self): return self
    def __exit__(self, *a): return False
    def update(self, *a, **k): pass
    def set_description(self, *a, **k): pass
    def close(self): pass
"""
RUN_CONVERT = """
import os, runpy, sys, torch
for n in ("float8_e4m3fn", "float8_e5m2", "uint16", "uint32", "uint64"):
    if not hasattr(torch, n):
        setattr(torch, n, type(n, (), {})())
# Without a tokenizer file llama.cpp's converter takes its built-in GPT-NeoX vocabulary (50,432 ids),
# which must match the embedding's rows: a larger vocabulary (Granite's 100,352) gets unused padding ids.
rows = int(os.environ.get("RILL_TWIN_VOCAB", "0"))
if rows:
    import gguf
    add_list, add_types = gguf.GGUFWriter.add_token_list, gguf.GGUFWriter.add_token_types
    def pad_list(self, tokens):
        tokens = list(tokens)
        return add_list(self, tokens + [f"<|twin_pad_{i}|>".encode() for i in range(len(tokens), rows)])
    def pad_types(self, types):
        types = list(types)
        return add_types(self, types + [gguf.TokenType.UNUSED] * (rows - len(types)))
    gguf.GGUFWriter.add_token_list, gguf.GGUFWriter.add_token_types = pad_list, pad_types
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(os.path.abspath(script))
runpy.run_path(script, run_name="__main__")
"""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"compare_llama: {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r.stdout


def prepare(args, shape):
    folder, hf_arch, _ = SHAPES[shape]
    base = os.path.join(args.work, shape)
    ckpt, twin = os.path.join(base, "checkpoint"), os.path.join(base, "twin")
    if not os.path.exists(os.path.join(ckpt, "model.safetensors")):
        log(f"[{shape}] random checkpoint of tests/checkpoints/{folder}")
        run([sys.executable, os.path.join(ROOT, "tests/checkpoints/make_random.py"), folder, ckpt])
    models = {}
    for d in args.dtypes:
        out = os.path.join(base, f"model.{d}.rill")
        if not os.path.exists(out):
            log(f"[{shape}] rill convert --dtype {d}")
            run([args.rill, "convert", ckpt, "-o", out, "--dtype", d, "--tokenizer", "none", "-q", "-f"])
        models[("rill", d)] = out
    # The twin folder: the same safetensors, the config with what llama.cpp's converter looks for, and
    # no tokenizer.json (its GPT-2 path needs transformers; Mamba then takes llama.cpp's GPT-NeoX vocab).
    os.makedirs(twin, exist_ok=True)
    link = os.path.join(twin, "model.safetensors")
    if not os.path.exists(link):
        os.symlink(os.path.abspath(os.path.join(ckpt, "model.safetensors")), link)
    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    cfg["architectures"] = [hf_arch]
    cfg["pad_vocab_size_multiple"] = 8  # no padding rows: the vocabulary is already a multiple of 8
    json.dump(cfg, open(os.path.join(twin, "config.json"), "w"))
    vocab = os.path.join(ckpt, "rwkv_vocab_v20230424.txt")
    if os.path.exists(vocab):
        shutil.copyfile(vocab, os.path.join(twin, "rwkv_vocab_v20230424.txt"))
    f16 = os.path.join(base, "twin.f16.gguf")
    if not os.path.exists(f16):
        log(f"[{shape}] llama.cpp convert_hf_to_gguf.py --outtype f16")
        stub = os.path.join(args.work, "stubs")
        for mod, text in (("transformers", STUB_TRANSFORMERS), ("tqdm", STUB_TQDM)):
            os.makedirs(os.path.join(stub, mod), exist_ok=True)
            open(os.path.join(stub, mod, "__init__.py"), "w").write(text)
        open(os.path.join(stub, "run_convert.py"), "w").write(RUN_CONVERT)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([stub, os.path.join(args.llama, "gguf-py"), args.llama]),
                   RILL_TWIN_VOCAB=str(cfg["vocab_size"]))
        run([sys.executable, os.path.join(stub, "run_convert.py"), os.path.join(args.llama, "convert_hf_to_gguf.py"),
             twin, "--outtype", "f16", "--outfile", f16], env=env)
    for d in args.dtypes:
        out = os.path.join(base, f"twin.{GGUF_TYPE[d]}.gguf")
        if not os.path.exists(out):
            log(f"[{shape}] llama-quantize {GGUF_TYPE[d]}")
            run([os.path.join(args.llama_bin, "llama-quantize"), f16, out, GGUF_TYPE[d]])
        models[("llama", d)] = out
    return models


def gguf_names(args, reader):
    """HF tensor name -> GGUF tensor name, by gguf-py's own table for the file's architecture."""
    sys.path.insert(0, os.path.join(args.llama, "gguf-py"))
    import gguf
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    model_arch = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    blocks = int(reader.fields[f"{arch}.block_count"].parts[-1][0])
    table = gguf.get_tensor_name_map(model_arch, blocks)

    def name(hf):
        # fla's RWKV-7 layout says attn./ffn. where gguf-py's table says attention./feed_forward.
        for n in (hf, hf.replace(".attn.", ".attention.").replace(".ffn.", ".feed_forward.")):
            g = table.get_name(n, try_suffixes=(".weight", ".bias"))
            if g:
                return g
        return None
    return name


def quality(args, shape):
    """Per-tensor reconstruction error and logits KL of rill q4 and llama.cpp Q4_0 (see --help)."""
    sys.path.insert(0, os.path.join(args.llama, "gguf-py"))
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import numpy as np
    import gguf
    import st_io
    base = os.path.join(args.work, shape)
    ckpt = os.path.join(base, "checkpoint")
    pure = os.path.join(base, "twin.Q4_0-pure.gguf")
    if not os.path.exists(pure):
        log(f"[{shape}] llama-quantize --pure Q4_0")
        run([os.path.join(args.llama_bin, "llama-quantize"), "--pure", os.path.join(base, "twin.f16.gguf"), pure, "Q4_0"])
    q4, report = os.path.join(base, "quality.q4.rill"), os.path.join(base, "quality.q4.csv")
    f32 = os.path.join(base, "quality.f32.rill")
    log(f"[{shape}] rill convert --dtype q4 --report, --dtype f32")
    run([args.rill, "convert", ckpt, "-o", q4, "--dtype", "q4", "--tokenizer", "none", "-q", "-f", "--report", report])
    run([args.rill, "convert", ckpt, "-o", f32, "--dtype", "f32", "--tokenizer", "none", "-q", "-f"])
    weights = st_io.read_safetensors(os.path.join(ckpt, "model.safetensors"))
    reader = gguf.GGUFReader(pure)
    by_name = {t.name: t for t in reader.tensors}
    to_gguf = gguf_names(args, reader)
    rows, replaced = [], dict(weights)
    for line in open(report).read().splitlines()[1:]:
        rill_name, source, dtype, _, _, rill_err = line.split(",")[:6]
        if dtype != "q4":
            continue
        w = weights[source].astype(np.float64)
        t = by_name.get(to_gguf(source) or "")
        if (shape, rill_name) in DERIVED:
            rows.append((rill_name, float(rill_err), None, DERIVED[(shape, rill_name)]))
            if t is not None and t.tensor_type == gguf.GGMLQuantizationType.Q4_0:
                replaced[source] = gguf.quants.dequantize(t.data, t.tensor_type).reshape(w.shape)
            continue
        if t is None or t.tensor_type != gguf.GGMLQuantizationType.Q4_0:
            rows.append((rill_name, float(rill_err), None, "not Q4_0 in llama.cpp's file"))
            continue
        d = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        if d.size != w.size:
            rows.append((rill_name, float(rill_err), None, f"llama.cpp's tensor has shape {d.shape}"))
            continue
        d = d.reshape(w.shape)
        q_err = float(np.sqrt(np.sum((w - d) ** 2) / np.sum(w * w)))
        rows.append((rill_name, float(rill_err), q_err, ""))
        replaced[source] = d.astype(np.float32)
    twin = os.path.join(base, "quality-q4_0")
    os.makedirs(twin, exist_ok=True)
    shutil.copyfile(os.path.join(ckpt, "config.json"), os.path.join(twin, "config.json"))
    st_io.write_safetensors(os.path.join(twin, "model.safetensors"), replaced, dtype="F32")
    q40 = os.path.join(base, "quality.q4_0.rill")
    run([args.rill, "convert", twin, "-o", q40, "--dtype", "f32", "--tokenizer", "none", "-q", "-f"])
    vocab = json.load(open(os.path.join(ckpt, "config.json")))["vocab_size"]
    ids = np.random.default_rng(0).integers(0, vocab, args.kl_tokens)
    logits = {}
    for key, model in (("f32", f32), ("rill q4", q4), ("Q4_0", q40)):
        out = os.path.join(base, f"quality.logits.{key.replace(' ', '_')}.npy")
        run([args.rill, "logits", model, "--tokens", ",".join(map(str, ids)), "-o", out])
        logits[key] = np.load(out).astype(np.float64)

    def logp(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    ref = logp(logits["f32"])
    kl = {}
    for key in ("rill q4", "Q4_0"):
        lq = logp(logits[key])
        kl[key] = (float(np.mean(np.sum(np.exp(ref) * (ref - lq), axis=1))),
                   float(np.mean(np.argmax(lq, axis=1) == np.argmax(ref, axis=1))))
    return rows, kl


def print_quality(args, shapes):
    results = {s: quality(args, s) for s in shapes}
    print("| shape | tensors compared | rill q4 error (median / max) | Q4_0 error (median / max) | rill lower on |"
          " KL rill q4 | KL Q4_0 | top-1 rill q4 / Q4_0 |")
    print("|---|---|---|---|---|---|---|---|")
    out = []
    for s in shapes:
        rows, kl = results[s]
        both = [r for r in rows if r[2] is not None]
        re_, qe = [r[1] for r in both], [r[2] for r in both]
        lower = sum(1 for r in both if r[1] <= r[2])
        print(f"| {SHAPES[s][2]} | {len(both)} of {len(rows)} | {statistics.median(re_):.4f} / {max(re_):.4f} | "
              f"{statistics.median(qe):.4f} / {max(qe):.4f} | {lower} of {len(both)} | {kl['rill q4'][0]:.5f} | "
              f"{kl['Q4_0'][0]:.5f} | {kl['rill q4'][1]:.3f} / {kl['Q4_0'][1]:.3f} |")
        for r in rows:
            if r[2] is None:
                print(f"  ({SHAPES[s][2]}: {r[0]} not compared: {r[3]})", file=sys.stderr)
        out.append({"shape": SHAPES[s][2], "tensors": [dict(zip(("tensor", "rill_q4", "q4_0", "note"), r)) for r in rows],
                    "kl": kl})
    print(f"(error: RMS(w - w') / RMS(w) per tensor; KL(f32 || quantized) in nats per token, mean over "
          f"{args.kl_tokens} random tokens; llama.cpp Q4_0 by llama-quantize --pure, read with gguf-py)")
    if args.json:
        json.dump(out, open(args.json, "w"), indent=1)


def bench_rill(args, model, threads):
    out = run([args.rill, "bench", model, "-t", str(threads), "-n", str(args.tokens), "--prefill", str(args.prefill),
               "-o", "json"])
    j = json.loads(out.splitlines()[0])
    return j["decode_tokens_per_s"], j["prefill_tokens_per_s"], j["percent_of_read_bandwidth"]


def bench_llama(args, model, threads):
    out = run([os.path.join(args.llama_bin, "llama-bench"), "-m", model, "-t", str(threads), "-p", str(args.prefill),
               "-n", str(args.tokens), "-r", "1", "-o", "json"])
    decode = prefill = 0.0
    for row in json.loads(out):
        if row.get("n_gen", 0) > 0:
            decode = row["avg_ts"]
        elif row.get("n_prompt", 0) > 0:
            prefill = row["avg_ts"]
    return decode, prefill


def streams_rill(args, model, threads):
    out = run([args.rill, "bench", model, "-t", str(threads), "-n", str(args.tokens), "--prefill", "0",
               "--streams", ",".join(map(str, args.streams)), "-o", "json"])
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {r["streams"]: r["aggregate_steps_per_s"] for r in rows if "streams" in r}


def streams_llama(args, model, threads):
    out = run([os.path.join(args.llama_bin, "llama-batched-bench"), "-m", model, "-c", "4096", "-b", "2048",
               "-ub", "512", "-npp", "0", "-ntg", str(args.tokens), "-npl", ",".join(map(str, args.streams)),
               "-t", str(threads), "-tb", str(threads), "--output-format", "jsonl"])
    # its JSON lines print an undefined prompt speed (no prompt) as -nan
    rows = [json.loads(re.sub(r":\s*-?nan", ": null", line)) for line in out.splitlines() if line.startswith("{")]
    return {r["pl"]: r["speed_tg"] for r in rows}


def alternate(args, shapes, models, threads, what, rill_fn, llama_fn):
    """Rounds of rill then llama.cpp per shape, dtype and thread count, so drift hits both alike:
    (shape, dtype, threads, runtime) -> [one result per round]."""
    results = {}
    for rnd in range(args.rounds):
        for s in shapes:
            for d in args.dtypes:
                for t in threads:
                    log(f"round {rnd + 1}/{args.rounds}: {what}{s} {d} {t} thread(s)")
                    results.setdefault((s, d, t, "rill"), []).append(rill_fn(args, models[s][("rill", d)], t))
                    results.setdefault((s, d, t, "llama"), []).append(llama_fn(args, models[s][("llama", d)], t))
    return results


def print_streams(args, shapes, models, threads):
    results = alternate(args, shapes, models, threads, "streams ", streams_rill, streams_llama)
    print("| shape | dtype | threads | streams | rill / llama.cpp (aggregate tok/s) | ratio | rill vs 1 stream | "
          "llama.cpp vs 1 sequence |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for s in shapes:
        for d in args.dtypes:
            for t in threads:
                r, l = results[(s, d, t, "rill")], results[(s, d, t, "llama")]
                med = lambda runs, n: statistics.median(x[n] for x in runs)
                for n in args.streams:
                    rn, ln = med(r, n), med(l, n)
                    print(f"| {SHAPES[s][2]} | {d} | {t} | {n} | {rn:.1f} / {ln:.1f} | {rn / ln:.2f} | "
                          f"{rn / med(r, args.streams[0]):.2f}x | {ln / med(l, args.streams[0]):.2f}x |")
                    rows.append({"shape": SHAPES[s][2], "dtype": d, "threads": t, "streams": n, "rill": rn, "llama": ln})
    print(f"(medians of {args.rounds} alternating rounds, {args.tokens} tokens per stream; rill bench --streams "
          f"against llama-batched-bench -npp 0 -ntg {args.tokens} -npl {','.join(map(str, args.streams))})")
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=textwrap.dedent(__doc__[__doc__.index("\n"):]))
    p.add_argument("--llama", required=True, help="llama.cpp checkout (convert_hf_to_gguf.py, gguf-py/)")
    p.add_argument("--llama-build", default="build/bin", help="llama-bench and llama-quantize, relative to --llama")
    p.add_argument("--rill", default=os.path.join(ROOT, "build/bin/rill"), help="the rill binary")
    p.add_argument("--work", default="/tmp/rill-compare", help="checkpoints and model files (kept between runs)")
    p.add_argument("--shapes", default="mamba,mamba2,rwkv7")
    p.add_argument("--dtypes", default="q8,q4")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--prefill", type=int, default=512)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--quality", action="store_true", help="compare q4 with Q4_0 (weights and logits) instead of speed")
    p.add_argument("--streams", help="compare many streams (e.g. 1,4,16) instead of single-stream speed")
    p.add_argument("--kl-tokens", type=int, default=256, help="tokens of the KL comparison (--quality)")
    p.add_argument("--json", help="also write every measurement here")
    args = p.parse_args()
    args.llama = os.path.abspath(args.llama)
    args.llama_bin = os.path.join(args.llama, args.llama_build)
    args.dtypes = args.dtypes.split(",")
    shapes = args.shapes.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    for s in shapes:
        if s not in SHAPES:
            sys.exit(f"compare_llama: unknown shape {s} (known: {', '.join(SHAPES)})")
    for d in args.dtypes:
        if d not in GGUF_TYPE:
            sys.exit(f"compare_llama: unknown dtype {d} (q8, q4)")
    args.streams = [int(n) for n in args.streams.split(",")] if args.streams else None
    for tool in ("llama-bench", "llama-quantize") + (("llama-batched-bench",) if args.streams else ()):
        if not os.access(os.path.join(args.llama_bin, tool), os.X_OK):
            sys.exit(f"compare_llama: no {tool} in {args.llama_bin} (see --help to build one)")
    if not os.access(args.rill, os.X_OK):
        sys.exit(f"compare_llama: no rill binary at {args.rill} (scripts/build.sh builds it)")
    os.makedirs(args.work, exist_ok=True)
    if args.quality:
        args.dtypes = ["q4"]
    models = {s: prepare(args, s) for s in shapes}
    if args.quality:
        print_quality(args, shapes)
        return
    if args.streams:
        print_streams(args, shapes, models, threads)
        return
    results = alternate(args, shapes, models, threads, "", bench_rill, bench_llama)  # [(decode, prefill, ...)]
    print(f"| shape | dtype | threads | decode rill / llama.cpp (tok/s) | ratio | prefill {args.prefill} "
          f"rill / llama.cpp (tok/s) | ratio | rill decode, share of the probe |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for s in shapes:
        for d in args.dtypes:
            for t in threads:
                r, l = results[(s, d, t, "rill")], results[(s, d, t, "llama")]
                rd, rp = statistics.median(x[0] for x in r), statistics.median(x[1] for x in r)
                ld, lp = statistics.median(x[0] for x in l), statistics.median(x[1] for x in l)
                share = statistics.median(x[2] for x in r)
                print(f"| {SHAPES[s][2]} | {d} | {t} | {rd:.1f} / {ld:.1f} | {rd / ld:.2f} | {rp:.1f} / {lp:.1f} | "
                      f"{rp / lp:.2f} | {share:.0f} % |")
                rows.append({"shape": SHAPES[s][2], "dtype": d, "threads": t, "rill": r, "llama": l,
                             "decode_ratio": rd / ld, "prefill_ratio": rp / lp})
    print(f"(medians of {args.rounds} alternating rounds; llama.cpp {GGUF_TYPE['q8']}/{GGUF_TYPE['q4']} twins of the "
          "same random checkpoints; share: rill's decode bytes per second against `rill bench`'s read-bandwidth probe "
          "over as many bytes as a decode step moves, the same run)")
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
