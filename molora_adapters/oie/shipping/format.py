"""The packaged-model format: what differs from a base encoder, in safetensors files listed by a JSON manifest.

A packaged OIE model is a directory::

    molora_package.json     # the manifest, written last: format, base, tokenizer, setup, tensor table, file hashes
    config.json             # the trained model's config (adapters, mixtures and prediction-head sections included)
    encoder.safetensors     # changed encoder tensors: whole layers, and only the changed rows of the embeddings
    mixture.safetensors     # the mixture: every expert's LoRA weights and the routers
    head.safetensors        # the OIE head
    README.md               # the model card (documentation: not hashed, not needed to load)

Everything else comes from the base encoder (``embedded:multilingual-e5-small`` for the shipped model), whose
identity (sha256 of its weights) the manifest records and loading checks.

Storage (``dtype``):

- ``fp32``: every stored tensor as trained; loading gives the run's model bit for bit.
- ``fp16``: float16. A tensor the base also has (encoder layers, embedding rows) is stored as its *difference* from
  the base (trained minus base), so the rounding error scales with what training changed, not with the weight.
- ``int8``: like ``fp16`` for the differences, but symmetric int8 with one float32 scale per row (per column for
  matrices narrower than 64 columns, such as LoRA ``B``): ``value = scale * q``, ``q`` in ``[-127, 127]``.

In every mode, tensors with fewer than :data:`QUANTIZE_MIN_NUMEL` elements (biases, norms, small classifiers), 1-D
tensors and the mixture routers (they make the discrete top-k choice) stay float32.

Integrity: the manifest holds the size and sha256 of every file loading reads; :func:`verify_files` raises
:class:`PackageIntegrityError` naming the damaged file, what was expected and what to do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import torch

from ...utils.io import sha256_file

__all__ = [
    "DTYPES",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "PackageIntegrityError",
    "QUANTIZE_MIN_NUMEL",
    "decode_tensor",
    "encode_tensor",
    "is_packaged_model",
    "read_manifest",
    "sha256_file",
    "verify_files",
]

MANIFEST_NAME = "molora_package.json"
FORMAT_VERSION = 1
DTYPES = ("fp32", "fp16", "int8")
PackageDtype = Literal["fp32", "fp16", "int8"]
QUANTIZE_MIN_NUMEL = 2048
"""Smallest 2-D tensor stored in fp16 / int8; smaller ones, 1-D tensors and routers stay float32."""
ROUTER_MARKER = "mixture_routers."
NARROW_COLUMNS = 64
"""Matrices with fewer columns than this get int8 scales per column instead of per row."""
SCALE_SUFFIX = "::scale"
ROWS_SUFFIX = "::rows"
ENCODINGS = ("full", "delta", "rows", "rows_delta")


class PackageIntegrityError(ValueError):
    """A packaged model's file is missing, damaged, or the package does not fit the installed base encoder."""


def is_packaged_model(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a packaged model (its :data:`MANIFEST_NAME`)."""
    return (Path(directory) / MANIFEST_NAME).is_file()


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a packaged model, checked for its format version.

    Raises:
        PackageIntegrityError: no readable manifest, or one of a newer format.
    """
    path = Path(directory) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackageIntegrityError(
            f"`{directory}` is not a packaged model: it has no `{MANIFEST_NAME}`. Build one with "
            "`molora package-model RUN_DIR --out DIR`."
        ) from None
    except (OSError, ValueError) as err:
        raise PackageIntegrityError(
            f"`{path}` is damaged ({err}); expected the JSON manifest written by `molora package-model`. "
            "Reinstall the package that shipped it, or rebuild it with `molora package-model`."
        ) from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PackageIntegrityError(
            f"`{path}` has format version {version!r}; this molora-adapters reads versions up to {FORMAT_VERSION}. "
            "Upgrade molora-adapters (`pip install -U molora-adapters`)."
        )
    return manifest


def verify_files(directory: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Check the size and sha256 of every file the manifest lists.

    Raises:
        PackageIntegrityError: naming the first missing or damaged file, with the expected and found values.
    """
    directory = Path(directory)
    fix = (
        "Reinstall the package that shipped it (`pip install --force-reinstall molora-adapters`), download it "
        "again, or rebuild it with `molora package-model RUN_DIR --out DIR`."
    )
    for name, meta in sorted(manifest.get("files", {}).items()):
        path = directory / name
        if not path.is_file():
            raise PackageIntegrityError(f"Packaged model `{directory}`: `{name}` is missing. {fix}")
        size = path.stat().st_size
        if size != meta["size"]:
            raise PackageIntegrityError(
                f"Packaged model `{directory}`: `{name}` is damaged: it has {size} bytes, the manifest "
                f"`{MANIFEST_NAME}` expects {meta['size']}. {fix}"
            )
        found = sha256_file(path)
        if found != meta["sha256"]:
            raise PackageIntegrityError(
                f"Packaged model `{directory}`: `{name}` is damaged: its sha256 is {found[:16]}..., the manifest "
                f"`{MANIFEST_NAME}` expects {meta['sha256'][:16]}.... {fix}"
            )


# ------------------------------------------------------------------------------------------------ tensor codecs
def storage_for(name: str, tensor: torch.Tensor, dtype: PackageDtype) -> str:
    """How one tensor is stored under the package ``dtype``: ``"fp32"``, ``"fp16"`` or ``"int8"``."""
    if dtype == "fp32" or tensor.ndim != 2 or tensor.numel() < QUANTIZE_MIN_NUMEL or ROUTER_MARKER in name:
        return "fp32"
    return dtype


def _int8(values: torch.Tensor, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 of a 2-D float tensor with one scale per slice along ``axis`` (0: per row, 1: per column)."""
    reduce = 1 if axis == 0 else 0
    amax = values.abs().amax(dim=reduce, keepdim=True)  # (rows, 1) or (1, cols)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    q = torch.clamp(torch.round(values / scale), -127, 127).to(torch.int8)
    return q, scale.squeeze(reduce).to(torch.float32)


def encode_tensor(
    name: str,
    tensor: torch.Tensor,
    base: torch.Tensor | None,
    dtype: PackageDtype,
    *,
    max_row_fraction: float = 0.5,
    min_row_change: float = 0.0,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """Encode one trained tensor against its base value.

    Args:
        name (`str`): the parameter name in the model.
        tensor (`torch.Tensor`): the trained value.
        base (`torch.Tensor`, *optional*): the base encoder's value (`None`: the base has no such tensor).
        dtype (`str`): ``"fp32"``, ``"fp16"`` or ``"int8"``.
        max_row_fraction (`float`, *optional*, defaults to 0.5): a 2-D tensor of the base with at most this share
            of changed rows stores only those rows (indices and values).
        min_row_change (`float`, *optional*, defaults to 0.0): in such a row-stored tensor (in practice the word
            embeddings), rows whose largest absolute change is at most this keep their base value (lossy: a size knob
            to measure on dev data; 0 keeps every changed row).

    Returns:
        `None` when the tensor equals its base (nothing to store); else ``(entry, tensors)``: the manifest entry
        (``shape``, ``encoding``, ``storage``, ``axis``, ``rows``) and the safetensors tensors to write.
    """
    tensor = tensor.detach().to("cpu", torch.float32).contiguous()
    rows = None
    if base is not None:
        base = base.detach().to("cpu", torch.float32)
        if base.shape != tensor.shape:
            raise ValueError(
                f"`{name}` has shape {tuple(tensor.shape)} but the base has {tuple(base.shape)}; package the run "
                "against the base encoder it was trained from (`--base`)."
            )
        if torch.equal(tensor, base):
            return None
        if tensor.ndim == 2:
            changed = (tensor != base).any(dim=1).nonzero().squeeze(1)  # (n_changed,)
            if changed.numel() <= max_row_fraction * tensor.shape[0]:
                rows = changed
                if min_row_change > 0:
                    change = (tensor.index_select(0, rows) - base.index_select(0, rows)).abs().amax(dim=1)
                    rows = rows[change > min_row_change]
                    if rows.numel() == 0:
                        return None
    storage = storage_for(name, tensor, dtype)
    delta = base is not None and storage != "fp32"  # fp32 keeps trained values: an exact round trip
    values = tensor - base if delta else tensor
    if rows is not None:
        values = values.index_select(0, rows)  # (n_changed, cols); storage was decided on the whole tensor
    entry: dict[str, Any] = {
        "shape": list(tensor.shape),
        "encoding": ("rows_delta" if delta else "rows")
        if rows is not None
        else ("delta" if delta else "full"),
        "storage": storage,
    }
    out: dict[str, torch.Tensor] = {}
    if rows is not None:
        entry["rows"] = int(rows.numel())
        out[name + ROWS_SUFFIX] = rows.to(torch.int32).contiguous()
    if storage == "int8":
        axis = 0 if values.shape[1] >= NARROW_COLUMNS else 1
        q, scale = _int8(values, axis)
        entry["axis"] = axis
        out[name], out[name + SCALE_SUFFIX] = q.contiguous(), scale.contiguous()
    elif storage == "fp16":
        out[name] = values.to(torch.float16).contiguous()
    else:
        out[name] = values.contiguous()
    return entry, out


def decode_tensor(
    name: str,
    entry: dict[str, Any],
    stored: dict[str, torch.Tensor],
    base: torch.Tensor | None,
    *,
    inplace: bool = False,
) -> torch.Tensor:
    """Rebuild one float32 tensor from its manifest ``entry``, the ``stored`` safetensors tensors and the base.

    Args:
        inplace (`bool`, *optional*, defaults to `False`): write into ``base`` (a float32 tensor the caller owns)
            instead of a copy; the loader does, which saves copying the 96M-value embedding matrix.

    Raises:
        PackageIntegrityError: the entry needs a base value that the base encoder lacks, or its shapes disagree.
    """
    encoding, storage = entry["encoding"], entry["storage"]
    if encoding not in ENCODINGS or storage not in DTYPES:
        raise PackageIntegrityError(f"`{name}`: unknown encoding {encoding!r} / storage {storage!r}.")
    values = stored[name]
    if storage == "int8":
        scale = stored[name + SCALE_SUFFIX]
        values = values.to(torch.float32) * (scale[:, None] if entry["axis"] == 0 else scale[None, :])
    else:
        values = values.to(torch.float32)
    shape = tuple(entry["shape"])
    if encoding == "full":
        out = values
    else:
        if base is None or tuple(base.shape) != shape:
            raise PackageIntegrityError(
                f"`{name}` is stored relative to the base encoder, which has "
                f"{'no such tensor' if base is None else f'shape {tuple(base.shape)}'}; expected shape {shape}."
            )
        out = base if inplace and base.dtype == torch.float32 else base.to(torch.float32).clone()
        if encoding == "delta":
            out += values
        else:
            rows = stored[name + ROWS_SUFFIX].long()
            if encoding == "rows_delta":
                values = out.index_select(0, rows) + values
            out.index_copy_(0, rows, values)
    if tuple(out.shape) != shape:
        raise PackageIntegrityError(
            f"`{name}` decodes to shape {tuple(out.shape)}, the manifest says {shape}."
        )
    return out
