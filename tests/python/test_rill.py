"""The Python module (python/rill) against the CLI and the goldens, its errors and its threads.

Run by ctest (test "python"): PYTHONPATH holds the built package, RILL_CLI the rill binary,
RILL_SOURCE_DIR the repository.
"""
import os
import subprocess
import threading

import numpy as np
import pytest

import rill

SRC = os.environ.get("RILL_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("RILL_CLI", "rill")
GOLDEN = os.path.join(SRC, "tests", "golden")
TOKEN_CASES = ["mamba1_awkward", "mamba1_hf_f16_tied", "mamba1_ssm_bf16_sharded", "mamba2_groups", "mamba2_tied_bf16",
               "rwkv7_fla_world", "rwkv7_blink_bf16", "recurrent_gemma_awkward", "recurrent_gemma_tied_bf16",
               "granite_hybrid_nope", "granite_hybrid_rope_bf16", "nemotron_h_bf16", "rwkv6_hf_world", "rwkv6_blink_bf16",
               "gated_deltanet_hf_bf16", "gated_deltanet_gva_tied", "gla_hf_bf16", "gla_conv_tied",
               "retnet_hf_bf16", "retnet_conv_tied"]
VECTOR_CASES = ["s4d_prenorm_mean", "s4d_postnorm_none", "mamba1_vector", "mamba2_vector"]


def tokens_of(name):
    with open(os.path.join(GOLDEN, name, "tokens.txt")) as f:
        return [int(t) for t in f.read().strip().split(",")]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Each golden fixture converted once (f32) through rill.convert."""
    out = tmp_path_factory.mktemp("models")
    cache = {}

    def get(name, dtype="f32"):
        key = (name, dtype)
        if key not in cache:
            path = str(out / f"{name}.{dtype}.rill")
            report = rill.convert(os.path.join(GOLDEN, name), path, dtype=dtype)
            assert report["file_bytes"] == os.path.getsize(path)
            cache[key] = path
        return cache[key]
    return get


@pytest.mark.parametrize("name", TOKEN_CASES)
def test_logits_equal_the_cli_bit_for_bit(name, converted, tmp_path):
    path = converted(name)
    toks = tokens_of(name)
    npy = str(tmp_path / "cli.npy")
    subprocess.run([CLI, "logits", path, "--tokens", ",".join(map(str, toks)), "-o", npy], check=True,
                   capture_output=True)
    cli = np.load(npy)
    py = rill.Model(path).session().logits(toks)
    assert py.dtype == np.float32 and py.shape == cli.shape
    assert np.array_equal(py, cli)
    golden = np.load(os.path.join(GOLDEN, name, "logits.npy"))
    assert np.abs(py - golden).max() <= 1e-4 * np.abs(golden).max()


@pytest.mark.parametrize("name", VECTOR_CASES)
def test_stream_equals_the_cli_bit_for_bit(name, converted, tmp_path):
    path = converted(name)
    inputs = np.load(os.path.join(GOLDEN, name, "inputs.npy")).astype(np.float32)
    npy_in, npy_out = str(tmp_path / "in.npy"), str(tmp_path / "out.npy")
    np.save(npy_in, inputs)
    subprocess.run([CLI, "stream", path, "--inputs", npy_in, "-o", npy_out, "--chunk", "64"], check=True,
                   capture_output=True)
    cli = np.load(npy_out)
    py = rill.Model(path).session(prefill_chunk=64).stream(inputs)
    assert np.array_equal(py, cli)
    # step_vector one row at a time leaves the same outputs (within float rounding of the chunked pass)
    s = rill.Model(path).session()
    one = np.stack([s.step_vector(x.copy()) for x in inputs])
    assert np.abs(one - py).max() <= 1e-4 * max(1.0, np.abs(py).max())


def test_bad_input_raises_and_leaves_the_state_unchanged(converted):
    m = rill.Model(converted("mamba1_awkward"))
    V = m.info["vocab_size"]
    s = m.session()
    s.step(3)
    before = s.state
    with pytest.raises(rill.TokenRange):
        s.step(V)
    with pytest.raises(rill.TokenRange):
        s.step(-1)
    with pytest.raises(rill.TokenRange):
        s.prefill([1, 2, V + 5])
    with pytest.raises(rill.TokenRange):
        s.logits([1, 2**40])
    with pytest.raises(rill.InvalidArgument):
        s.prefill(np.array([1.5, 2.0]))  # not integers
    with pytest.raises(rill.InvalidArgument):
        s.step(1, out=np.zeros(V, np.float64))  # wrong dtype
    with pytest.raises(rill.InvalidArgument):
        s.step(1, out=np.zeros(V + 1, np.float32))  # wrong size
    with pytest.raises(rill.InvalidArgument):
        s.step(1, out=np.zeros((V, 2), np.float32)[:, 0])  # not contiguous
    with pytest.raises(rill.InvalidArgument):
        s.step_vector(np.zeros(4, np.float32))  # a token model
    assert s.state == before
    other = rill.Model(converted("mamba2_groups")).session()
    with pytest.raises(rill.StateMismatch):
        s.state = other.state
    with pytest.raises(rill.StateMismatch):
        s.state = before[:-1]
    damaged = bytearray(before)
    damaged[-1] ^= 1
    with pytest.raises(rill.StateMismatch):
        s.state = bytes(damaged)
    assert s.state == before
    with pytest.raises(rill.IoError):
        rill.Model("/nonexistent/model.rill")
    with pytest.raises(rill.InvalidArgument):
        rill.Model(converted("mamba1_awkward"), backend="tpu")
    with pytest.raises(rill.ConvertError):
        rill.convert("/nonexistent", "/tmp/never.rill")


def test_context_limit_refuses_or_slides(converted):
    path = converted("nemotron_h_bf16")
    toks = tokens_of("nemotron_h_bf16")
    assert rill.Model(path).info["max_context"] == 96  # the converter's default: max_position_embeddings
    m = rill.Model(path, max_context=16)
    assert m.info["max_context"] == 16 and m.info["state_bytes"] < rill.Model(path).info["state_bytes"]
    s = m.session()
    s.prefill(toks[:16])
    before = s.state
    with pytest.raises(rill.ContextFull):
        s.step(toks[16])
    assert s.state == before
    slide = np.load(os.path.join(GOLDEN, "nemotron_h_bf16", "logits_slide16.npy"))
    got = m.session(slide=True).logits(toks)
    assert np.abs(got - slide).max() <= 1e-4 * np.abs(slide).max()


def test_chunked_prefill_is_opt_in_and_close(converted):
    """The default prefill leaves stepping's bits; chunked_prefill=True stays within 1e-5 of the largest
    logit (GLA's 128-key heads take the chunked form on AVX-512; elsewhere the recurrence runs)."""
    path = converted("gla_hf_bf16")
    toks = tokens_of("gla_hf_bf16")
    m = rill.Model(path)
    stepped = m.session().logits(toks)[-1]
    exact = m.session().prefill(toks)
    chunked = m.session(chunked_prefill=True).prefill(toks)
    assert np.array_equal(exact, stepped)
    assert np.abs(chunked - stepped).max() <= 1e-5 * np.abs(stepped).max()
    assert m.session(chunked_prefill=True).clone().prefill(toks).shape == chunked.shape


def test_sensor_input_errors(converted):
    m = rill.Model(converted("s4d_prenorm_mean"))
    d = m.info["d_input"]
    s = m.session()
    s.step_vector(np.ones(d, np.float32))
    before = s.state
    bad = np.ones(d, np.float32)
    bad[0] = np.nan
    with pytest.raises(rill.NonFinite):
        s.step_vector(bad)
    with pytest.raises(rill.NonFinite):
        s.stream(np.stack([np.ones(d, np.float32), bad]))
    with pytest.raises(rill.InvalidArgument):
        s.step_vector(np.ones(d + 1, np.float32))
    with pytest.raises(rill.InvalidArgument):
        s.step_vector(np.ones(d, np.float64))
    with pytest.raises(rill.InvalidArgument):
        s.stream(np.ones((3, d + 1), np.float32))
    with pytest.raises(rill.InvalidArgument):
        s.step(1)  # a vector model
    assert s.state == before


def test_state_round_trips_clone_and_batch(converted):
    m = rill.Model(converted("rwkv7_fla_world"))
    toks = tokens_of("rwkv7_fla_world")
    a = m.session()
    a.prefill(toks[:8])
    saved = a.state
    x = a.step(toks[8]).copy()
    a.state = saved
    assert np.array_equal(a.step(toks[8]), x)
    a.state = saved
    c = a.clone()
    assert np.array_equal(c.step(toks[8]), x)
    a.reset()
    assert a.state == m.session().state
    # Batch: each session as if alone
    s1, s2, r1, r2 = m.session(), m.session(), m.session(), m.session()
    b = rill.Batch(m, 2)
    for t in range(6):
        out = b.step([s1, s2], [toks[t], toks[t + 1]])
        assert np.array_equal(out[0], r1.step(toks[t]))
        assert np.array_equal(out[1], r2.step(toks[t + 1]))
    with pytest.raises(rill.InvalidArgument, match="stream 1"):
        b.step([s1, s1], [1, 2])  # one session twice in a pass
    with pytest.raises(rill.TokenRange, match="stream 1"):
        b.step([s1, s2], [1, 10**6])
    with pytest.raises(rill.InvalidArgument):
        b.step([s1, s2, r1], [1, 2, 3])  # more than max_streams
    assert np.array_equal(s1.step(toks[0]), r1.step(toks[0]))  # the refused steps changed nothing


def test_batch_of_sensor_streams(converted):
    m = rill.Model(converted("s4d_prenorm_mean"))
    d = m.info["d_input"]
    X = np.load(os.path.join(GOLDEN, "s4d_prenorm_mean", "inputs.npy")).astype(np.float32)
    streams, alone = [m.session() for _ in range(3)], [m.session() for _ in range(3)]
    b = rill.Batch(m, 3)
    for t in range(5):
        rows = np.stack([X[(t + 7 * i) % len(X)] for i in range(3)])
        out = b.step_vectors(streams, rows)
        for i in range(3):
            assert np.array_equal(out[i], alone[i].step_vector(rows[i].copy()))
    before = [s.state for s in streams]
    rows[2, 0] = np.nan
    with pytest.raises(rill.NonFinite, match="stream 2"):
        b.step_vectors(streams, rows)
    with pytest.raises(rill.InvalidArgument):
        b.step_vectors(streams, np.ones((3, d + 1), np.float32))
    with pytest.raises(rill.InvalidArgument):
        b.step(streams, [1, 2, 3])  # a vector model
    assert [s.state for s in streams] == before
    # skip_bad: stream 2 keeps its state and gets a NaN row; the others advance as if alone
    out, refused = b.step_vectors(streams, rows, skip_bad=True)
    assert list(refused) == [2] and isinstance(refused[2], rill.NonFinite) and "stream 2" in str(refused[2])
    assert np.isnan(out[2]).all() and streams[2].state == before[2]
    for i in range(2):
        assert np.array_equal(out[i], alone[i].step_vector(rows[i].copy()))
    out, refused = b.step_vectors(streams, np.ones((3, d), np.float32), skip_bad=True)
    assert refused == {} and np.isfinite(out).all()


def test_batch_skip_bad_tokens(converted):
    m = rill.Model(converted("mamba1_awkward"))
    V = m.info["vocab_size"]
    a, c, ra, rc = m.session(), m.session(), m.session(), m.session()
    b = rill.Batch(m, 3)
    out, refused = b.step([a, c, a], [5, V, 7], skip_bad=True)  # c: out of range; a again: given twice
    assert set(refused) == {1, 2} and isinstance(refused[1], rill.TokenRange)
    assert isinstance(refused[2], rill.InvalidArgument)
    assert np.array_equal(out[0], ra.step(5)) and np.isnan(out[1:]).all()
    assert a.state == ra.state and c.state == rc.state


def test_two_threads_step_two_sessions_as_if_alone(converted):
    m = rill.Model(converted("mamba2_groups"))
    toks = tokens_of("mamba2_groups")
    alone = [m.session().logits(toks), m.session().logits(toks[::-1])]
    got = [None, None]

    def run(i):
        s = m.session()
        seq = toks if i == 0 else toks[::-1]
        out = np.empty((len(seq), m.info["vocab_size"]), np.float32)
        for _ in range(20):  # long enough for the two to overlap
            s.reset()
            for j, t in enumerate(seq):
                s.step(t, out=out[j])
        got[i] = out

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert np.array_equal(got[0], alone[0]) and np.array_equal(got[1], alone[1])


def test_tokenizer_and_generate(tmp_path):
    path = str(tmp_path / "demo.rill")
    report = rill.convert(os.path.join(SRC, "examples", "demo_model", "checkpoint"), path, dtype="q8")
    assert report["arch"] == "mamba1"
    quantized = [t for t in report["tensors"] if t["dtype"] == "q8"]
    assert quantized and all(0 < t["rel_rms"] < 0.05 for t in quantized)
    m = rill.Model(path)
    ids = m.tokenize("ROMEO: hello")
    assert ids.dtype == np.int32 and m.detokenize(ids) == "ROMEO: hello"
    text = "".join(m.generate("ROMEO:", 40, temperature=0, seed=1))
    again = "".join(m.generate("ROMEO:", 40, temperature=0, seed=1))
    assert text == again and len(text) > 0
    # greedy generation is the argmax of the logits, step by step
    s = m.session()
    logits = s.prefill(m.tokenize("ROMEO:"))
    ids = []
    for _ in range(10):
        t = int(np.argmax(logits[:256]))
        ids.append(t)
        logits = s.step(t)
    assert text.encode()[:10] == bytes(ids)


def test_model_outlives_its_python_object(converted):
    m = rill.Model(converted("mamba1_awkward"))
    s = m.session()
    del m
    assert s.step(1).shape[0] > 0


def test_type_stubs_match_the_module(converted):
    """python/rill/__init__.pyi names what the package exports, with the same parameters and defaults,
    and its TypedDicts the keys that Model.info and convert() return."""
    import ast
    import inspect
    stub = ast.parse(open(os.path.join(os.path.dirname(rill.__file__), "__init__.pyi")).read())
    classes = {n.name: n for n in stub.body if isinstance(n, ast.ClassDef)}
    funcs = {n.name: n for n in stub.body if isinstance(n, ast.FunctionDef)}
    assert set(rill.__all__) <= set(classes) | set(funcs)

    def check(fn_stub, obj, where):
        sig = inspect.signature(obj)
        names = [a.arg for a in fn_stub.args.args]
        assert names == list(sig.parameters), where
        defaults = [ast.literal_eval(d) for d in fn_stub.args.defaults]
        real = [p.default for p in sig.parameters.values() if p.default is not inspect.Parameter.empty]
        assert defaults == real, where

    check(funcs["convert"], rill.convert, "convert")
    for cname in ("Model", "Session", "Batch"):
        cls = getattr(rill, cname)
        for f in classes[cname].body:
            if not isinstance(f, ast.FunctionDef):
                continue
            decorators = {d.id if isinstance(d, ast.Name) else d.attr for d in f.decorator_list}
            if decorators == {"overload"}:  # the names; the defaults are the overloads' Literal[...] = ...
                assert [a.arg for a in f.args.args] == list(inspect.signature(getattr(cls, f.name)).parameters)
            elif f.decorator_list:  # a property (and its setter)
                assert isinstance(inspect.getattr_static(cls, f.name), property), f"{cname}.{f.name}"
            else:
                check(f, getattr(cls, f.name), f"{cname}.{f.name}")
    import builtins
    for cname in rill.__all__:
        cls = getattr(rill, cname)
        if isinstance(cls, type) and issubclass(cls, Exception):
            stub_bases = {getattr(rill, b.id, None) or getattr(builtins, b.id) for b in classes[cname].bases}
            real = {c for c in cls.__mro__[1:] if c in (rill.Error, ValueError, OSError, MemoryError, Exception)}
            assert stub_bases == real - ({Exception} if cls is not rill.Error else set()), cname

    def keys(name):
        return {n.target.id for n in classes[name].body if isinstance(n, ast.AnnAssign)}

    m = rill.Model(converted("mamba1_awkward"))
    assert set(m.info) == keys("ModelInfo")
    report = rill.convert(os.path.join(GOLDEN, "s4d_prenorm_mean"), converted("s4d_prenorm_mean") + ".again",
                          dtype="q8")
    assert set(report) == keys("ConvertReport") and set(report["tensors"][0]) == keys("TensorReport")
