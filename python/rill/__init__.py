"""rill: recurrent sequence models (Mamba, Mamba-2, RWKV-7, S4D, RecurrentGemma, Mamba-2 / attention
hybrids) one token or one
sensor sample at a time, with a state whose size never grows.

    import rill
    m = rill.Model("model.rill")
    s = m.session()
    logits = s.prefill(m.tokenize("ROMEO:"))      # numpy float32 [vocab]
    for piece in m.generate("ROMEO:", 40, temperature=0.8, seed=1):
        print(piece, end="")

A thin layer over the C++ runtime (the compiled module rill._rill): nothing is re-implemented.
Errors are exceptions named after the runtime's Status codes, all subclasses of rill.Error; a failed
call leaves the session's state as it was. See docs/python.md.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence, Union

import numpy as np

from . import _rill

__all__ = ["Model", "Session", "Batch", "convert", "Error", "ConvertError", "InvalidArgument", "BadState", "Misuse",
           "BadMagic", "VersionError", "CorruptModel", "Unsupported", "Truncated", "IoError",
           "ArenaTooSmall", "Alignment", "OutOfMemory", "NoBackend", "DeviceError", "TokenRange",
           "NonFinite", "StateMismatch", "ContextFull"]


class Error(Exception):
    """A failed rill call. `code` is the runtime's Status value (rill.hpp)."""
    code = -1


_BY_CODE = {}


def _status(name: str, code: int, doc: str, base=Error):
    cls = type(name, (base,), {"code": code, "__doc__": doc, "__module__": __name__})
    _BY_CODE[code] = cls
    return cls


InvalidArgument = _status("InvalidArgument", 1, "A wrong argument: dtype, shape, size, an option out of range.",
                          base=type("_ValueBase", (Error, ValueError), {}))
BadState = _status("BadState", 2, "The object is not initialised.")
Misuse = _status("Misuse", 3, "A handle used after its release or close (the C API's RILL_MISUSE).")
BadMagic = _status("BadMagic", 20, "Not a rill model file.")
VersionError = _status("VersionError", 21, "The file's format is newer than this rill.")
CorruptModel = _status("CorruptModel", 22, "The file failed verification.")
Unsupported = _status("Unsupported", 23, "An architecture, dtype or feature this build does not support.")
Truncated = _status("Truncated", 24, "The file is shorter than it declares.")
IoError = _status("IoError", 25, "A file could not be opened, mapped or read.", base=type("_OSBase", (Error, OSError), {}))
ArenaTooSmall = _status("ArenaTooSmall", 40, "Memory smaller than the footprint.")
Alignment = _status("Alignment", 41, "A buffer is not aligned as required.")
OutOfMemory = _status("OutOfMemory", 42, "The system or the device could not provide memory.",
                      base=type("_MemBase", (Error, MemoryError), {}))
NoBackend = _status("NoBackend", 60, "The backend is not compiled in, or its device is absent.")
DeviceError = _status("DeviceError", 61, "The device failed a pass.")
TokenRange = _status("TokenRange", 80, "A token id outside [0, vocab).", base=type("_IdxBase", (Error, ValueError), {}))
NonFinite = _status("NonFinite", 81, "NaN or Inf in the input.", base=type("_NFBase", (Error, ValueError), {}))
StateMismatch = _status("StateMismatch", 82, "A state blob from another model, of the wrong size, or damaged.",
                        base=type("_SMBase", (Error, ValueError), {}))
ContextFull = _status("ContextFull", 83, "The stream holds max_context tokens and the session refuses more "
                      "(Model(max_context=...) for a larger context, or Model.session(slide=True)); nothing changed.")
ConvertError = _status("ConvertError", 1000, "The converter refused a checkpoint (the message names the cause).")

_rill._set_exceptions(_BY_CODE)

Tokens = Union[Sequence[int], np.ndarray]


class Model:
    """A verified model file, mapped (zero copy). Sessions keep it alive.

    backend: "cpu" or "cuda"; device: the CUDA device index; threads: a thread pool for the matrix
    products (None: the calling thread only); max_context: for models with attention over every token
    (Mamba-2 hybrids), the tokens a stream holds, which sizes the state (0: the file's default).
    """

    def __init__(self, path: str, backend: str = "cpu", device: int = 0, threads: Optional[int] = None,
                 max_context: int = 0):
        self._m = _rill._Model(str(path), backend, device, threads, max_context)

    @property
    def info(self) -> dict:
        """arch, backend, d_model, n_layer, vocab_size, d_input, d_output, input / output kinds,
        weight_bytes, state_bytes, file_bytes, tokenizer, bos_id, eos_id, max_context (0: no limit), path."""
        return self._m.info

    def session(self, prefill_chunk: int = 64, slide: bool = False, chunked_prefill: bool = False) -> "Session":
        """A new session with the empty state; prefill_chunk rows go through the model at a time. A model
        with max_context: a full stream raises ContextFull, or with slide=True keeps the last tokens.
        chunked_prefill=True lets a prefill take a faster chunked form where the CPU has one (stepping's
        values within rounding, not its bits: see SessionOptions::chunked_prefill)."""
        return Session(self, self._m.session(prefill_chunk, slide, chunked_prefill))

    def tokenize(self, text: str) -> np.ndarray:
        """Token ids (int32) with the model's embedded tokenizer."""
        return self._m.tokenize(text)

    def detokenize(self, ids: Tokens) -> str:
        """The text of the ids (invalid UTF-8 across a cut is replaced)."""
        return self._m.detokenize(ids).decode("utf-8", errors="replace")

    def generate(self, prompt: str, n: int, temperature: float = 0.8, top_k: int = 40, top_p: float = 0.95,
                 seed: int = 0, stop: Optional[Sequence[str]] = None) -> Iterator[str]:
        """Text pieces of up to n sampled tokens after the prompt (stops at eos or at a stop string)."""
        info = self.info
        s = self.session()
        ids = self.tokenize(prompt)
        if len(ids) == 0:
            ids = np.array([info["bos_id"] if info["bos_id"] >= 0 else 0], dtype=np.int32)
        logits = s.prefill(ids)
        sampler = _rill._Sampler(temperature, top_k, top_p, seed, logits.shape[0])
        pending = b""
        text = ""
        for _ in range(n):
            tok = sampler.sample(logits, info["vocab_size"])
            if tok == info["eos_id"]:
                break
            pending += self._m.detokenize([tok])
            try:
                piece = pending.decode("utf-8")
                pending = b""
            except UnicodeDecodeError:
                piece = ""  # a character cut between tokens: wait for the rest
            if piece:
                text += piece
                if stop and any(x in text for x in stop):
                    yield piece
                    return
                yield piece
            s.step(tok, out=logits)


class Session:
    """One stream's state and its steps. Each call that returns an array writes into a new float32
    array, or into `out=` (a float32 C-contiguous array of the right size) without allocating."""

    def __init__(self, model: Model, s):
        self.model = model
        self._s = s

    def step(self, token: int, out: Optional[np.ndarray] = None) -> np.ndarray:
        """One token: the next token's logits [vocab]."""
        return self._s.step(token, out)

    def prefill(self, tokens: Tokens, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Many tokens at once (in chunks): the last one's logits [vocab]. Checked before any runs."""
        return self._s.prefill(tokens, out)

    def logits(self, tokens: Tokens) -> np.ndarray:
        """Every token's logits [T, vocab], stepping them one by one."""
        return self._s.logits(tokens)

    def step_vector(self, x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """One input vector (float32 [d_input]) of a vector model: its output [d_output]."""
        return self._s.step_vector(x, out)

    def stream(self, X: np.ndarray) -> np.ndarray:
        """Input vectors float32 [T, d_input]: every step's output [T, d_output]."""
        return self._s.stream(X)

    def reset(self) -> None:
        """Back to the empty state."""
        self._s.reset()

    @property
    def state(self) -> bytes:
        """The state as a self-describing blob (64-byte header with the model's fingerprint)."""
        return self._s.state

    @state.setter
    def state(self, blob: bytes) -> None:
        self._s.state = blob

    def clone(self) -> "Session":
        """A new session with a copy of this one's state."""
        return Session(self.model, self._s.clone())


class Batch:
    """One forward pass for up to max_streams sessions of one model."""

    def __init__(self, model: Model, max_streams: int):
        self.model = model
        self._b = _rill._Batch(model._m, max_streams)

    def step(self, sessions: Sequence[Session], tokens: Tokens, skip_bad: bool = False):
        """Session i takes tokens[i]: the logits [len(sessions), vocab], each row as if stepped alone.
        A refused stream (a token out of range, a session given twice) refuses the whole step, and the
        exception names the stream; no session changes. skip_bad=True: the refused streams are skipped
        instead (their state unchanged, their rows NaN), the others advance, and the result is
        (logits, {stream index: the exception it would have raised})."""
        return self._result(self._b.step([s._s for s in sessions], tokens, skip_bad))

    def step_vectors(self, sessions: Sequence[Session], X: np.ndarray, skip_bad: bool = False):
        """Vector models: session i takes row i of X (float32 [len(sessions), d_input]): the outputs
        [len(sessions), d_output], each row as if stepped alone. A NaN row refuses the step (NonFinite,
        naming the stream); no session changes. skip_bad as for step."""
        return self._result(self._b.step_vectors([s._s for s in sessions], X, skip_bad))

    @staticmethod
    def _result(r):
        if not isinstance(r, tuple):
            return r
        out, codes = r
        return out, {i: _BY_CODE.get(c, Error)(f"batch step: stream {i}: {_rill.status_str(c)}")
                     for i, c in codes.items()}


def convert(checkpoint: str, out: str, dtype: str = "f32", group: int = 32, quant_layout: str = "rows16",
            tokenizer: str = "auto", kv_dtype: str = "auto", force: bool = False, report_csv: str = "") -> dict:
    """Converts a checkpoint folder (config.json + safetensors) into a rill file; returns the report:
    arch, params, weight_bytes, state_bytes, file_bytes and per tensor its dtype, bytes and relative
    RMS quantization error (rel_rms)."""
    return _rill.convert(str(checkpoint), str(out), dtype, group, quant_layout, tokenizer, kv_dtype, force,
                         str(report_csv))
