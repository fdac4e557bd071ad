"""Minimal safetensors and .npy writers (and a safetensors reader) on numpy alone (no `safetensors` package needed).

Used by the demo-model trainer and the golden-output generator to write Hugging Face-layout
checkpoints: a JSON header (u64 little-endian length, then JSON), then the raw tensor bytes.
"""
import json
import struct

import numpy as np

_DTYPE_NAMES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}


def f32_to_bf16_bits(a):
    """Round-to-nearest-even f32 -> bf16, returned as uint16 bit patterns."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_bits_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors, dtype="F32", metadata=None):
    """tensors: dict name -> float ndarray. dtype: F32, F16 or BF16 for every tensor,
    or a dict name -> dtype. Returns the dict of arrays as they were stored (rounded), as f64."""
    header = {}
    blobs = []
    offset = 0
    stored = {}
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        dt = dtype[name] if isinstance(dtype, dict) else dtype
        if dt == "F32":
            raw = np.ascontiguousarray(a, dtype=np.float32)
            stored[name] = raw.astype(np.float64)
        elif dt == "F16":
            raw = np.ascontiguousarray(a, dtype=np.float16)
            stored[name] = raw.astype(np.float64)
        elif dt == "BF16":
            raw = f32_to_bf16_bits(a)
            stored[name] = bf16_bits_to_f32(raw).reshape(a.shape).astype(np.float64)
        else:
            raise ValueError(dt)
        b = raw.tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return stored


def write_npy(path, a):
    """float32 .npy (version 1.0, C order)."""
    np.save(path, np.ascontiguousarray(a, dtype=np.float32))


def read_safetensors(path):
    """dict name -> float32 ndarray of a .safetensors file (F32, F16 or BF16 tensors)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = data[a:b]
        if t["dtype"] == "F32":
            x = np.frombuffer(raw, dtype="<f4")
        elif t["dtype"] == "F16":
            x = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif t["dtype"] == "BF16":
            x = bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2"))
        else:
            raise ValueError(f"{name}: dtype {t['dtype']} is not F32, F16 or BF16")
        out[name] = x.reshape(t["shape"]).copy()
    return out
