"""Building a packaged OIE model (see :mod:`.format`) from a trained run, e.g. ``molora package-model``.

Example::

    from molora_adapters.oie.shipping import package_model

    package_model("runs/final", "dist/oie-model", dtype="int8")  # run dir (or its train/), output dir
    pipe = OIEPipeline.from_pretrained("dist/oie-model")
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ...utils.io import atomic_directory, atomic_write_text
from ...version import __version__
from .format import DTYPES, FORMAT_VERSION, MANIFEST_NAME, PackageDtype, encode_tensor, sha256_file
from .load import base_state_dict, base_weights_sha256, resolve_base

__all__ = ["TENSOR_FILES", "find_run", "package_model", "tensor_file"]

TENSOR_FILES = ("encoder.safetensors", "mixture.safetensors", "head.safetensors")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "sentencepiece.bpe.model",
)
_TOKENIZER_CONFIG_IGNORED = ("fix_mistral_regex", "name_or_path")


def tensor_file(name: str) -> str:
    """The file of one parameter: the head, the mixture (experts and routers), or the encoder (everything else)."""
    if name.startswith("heads."):
        return "head.safetensors"
    if "mixture_routers." in name or ".loras." in name:
        return "mixture.safetensors"
    return "encoder.safetensors"


def find_run(run_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``(model directory, run directory)`` of a trained run: ``RUN_DIR/train`` (written by ``molora train`` /
    ``run_recipe``) and ``RUN_DIR``, or a model directory itself and its parent.

    Raises:
        FileNotFoundError: no model (``config.json``) in either place.
    """
    run_dir = Path(run_dir)
    for model_dir, root in ((run_dir / "train", run_dir), (run_dir, run_dir.parent)):
        if (model_dir / "config.json").is_file():
            return model_dir, root
    raise FileNotFoundError(
        f"`{run_dir}` holds no trained model: expected a run directory of `molora train` (with `train/config.json`) "
        "or a model directory written by `save_pretrained`."
    )


def _run_base(root: Path) -> str | None:
    try:
        return json.loads((root / "recipe.json").read_text(encoding="utf-8"))["model"]
    except (OSError, ValueError, KeyError):
        return None


def _unique_state(model, base_names: set[str]) -> dict[str, Any]:
    """The model's tensors once each: of names sharing storage (tied weights), the one the base has, else the first."""
    groups: dict[tuple, list[str]] = {}
    state = model.state_dict()
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        groups.setdefault(key, []).append(name)
    keep = [next((n for n in names if n in base_names), names[0]) for names in groups.values()]
    return {n: state[n] for n in keep}


def _same_tokenizer(model_dir: Path, base_dir: Path) -> bool:
    """Whether the run's tokenizer is the base encoder's: the same ``tokenizer.json`` and, loaded, the same special
    tokens, length limit and sides (files written by other transformers versions differ in unimportant keys)."""
    if not (model_dir / "tokenizer.json").is_file():
        return not any((model_dir / f).is_file() for f in TOKENIZER_FILES)  # no tokenizer saved: the base's
    if sha256_file(model_dir / "tokenizer.json") != sha256_file(base_dir / "tokenizer.json"):
        return False
    from ...models.tokenizer import load_tokenizer

    def summary(directory: Path) -> tuple:
        tok = load_tokenizer(str(directory))
        return (
            type(tok).__name__,
            tok.special_tokens_map,
            tok.model_max_length,
            tok.padding_side,
            tok.truncation_side,
        )

    return summary(model_dir) == summary(base_dir)


def _load_run_model(model_dir: Path):
    from adapters import AutoAdapterModel

    from ...loading import is_staged_run, load_staged_model

    if is_staged_run(model_dir):
        return load_staged_model(model_dir)
    return AutoAdapterModel.from_pretrained(str(model_dir)).eval()


def _drop_inactive_adapters(model) -> list[str]:
    """Delete the mixtures and adapters the model's active setup does not use (a run that never trained its
    mixture, e.g. full fine-tuning, ships without it). Returns the deleted names."""
    active = getattr(model, "active_adapters", None)
    used = set(active.flatten()) if active is not None else set()
    if active is not None:
        used |= {block.name for block in [active, *active] if hasattr(block, "name")}
    dropped = []
    for name in sorted(getattr(model, "adapter_mixtures", None) or {}):
        if name not in used:
            model.delete_adapter_mixture(name, delete_experts=True)
            dropped.append(name)
    for name in sorted(model.adapters_config.adapters):
        if name not in used:
            model.delete_adapter(name)
            dropped.append(name)
    return dropped


def package_model(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    dtype: PackageDtype = "fp16",
    base: str | None = None,
    name: str | None = None,
    min_row_change: float = 0.0,
    model_card: bool = True,
    card_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write the packaged form of a trained OIE model into ``out_dir`` (atomically: complete or untouched).

    Args:
        run_dir (`str` or `os.PathLike`): a ``molora train`` run directory (or its ``train/``), or any model directory
            loadable by ``OIEPipeline.from_pretrained``.
        out_dir (`str` or `os.PathLike`): the package directory (replaced if it exists).
        dtype (`str`, *optional*, defaults to `"fp16"`): ``"fp32"`` (exact), ``"fp16"`` or ``"int8"`` (see
            :mod:`molora_adapters.oie.shipping.format`).
        base (`str`, *optional*): the base encoder the run was trained from; defaults to the run's
            ``recipe.json`` ``model``.
        name (`str`, *optional*): the model's name, recorded in the manifest and the card.
        min_row_change (`float`, *optional*, defaults to 0.0): changed embedding rows whose largest absolute change is
            at most this are left at their base value (lossy, smaller; see
            :func:`~molora_adapters.oie.shipping.format.encode_tensor`). 0 keeps every changed row.
        model_card (`bool`, *optional*, defaults to `True`): write ``README.md`` from the run's ``results.json``,
            ``training.json`` and ``recipe.json`` (see :func:`~molora_adapters.oie.shipping.card.model_card`).
        card_kwargs (`dict`, *optional*): passed to the card writer (e.g. ``license``).
        progress (`bool`, *optional*, defaults to `True`): a progress bar over the tensors.
        log (`Callable[[str], None]`, *optional*): where to report what was stored.

    Mixtures and adapters that the model's active setup does not use are left out (they do not change its output).

    Returns:
        `Path`: ``out_dir``.
    """
    from safetensors.torch import save

    from ...models.embedded import EMBEDDED_MODELS, EMBEDDED_PREFIX, is_embedded_name

    if dtype not in DTYPES:
        raise ValueError(f"`dtype` must be one of {', '.join(DTYPES)}, got {dtype!r}.")
    if not min_row_change >= 0:
        raise ValueError(f"`min_row_change` must be >= 0, got {min_row_change!r}.")
    model_dir, root = find_run(run_dir)
    base = base or _run_base(root)
    if base is None:
        raise ValueError(
            f"`base`: `{root}` has no recipe.json naming the base encoder; pass it (e.g. "
            "`embedded:multilingual-e5-small` or a model directory)."
        )
    base_dir = resolve_base(base)
    model = _load_run_model(model_dir)
    dropped = _drop_inactive_adapters(model)
    prefix = model.base_model_prefix
    base_sd = base_state_dict(base_dir, prefix)
    state = _unique_state(model, set(base_sd))
    tensors: dict[str, dict[str, Any]] = {}
    files: dict[str, dict[str, Any]] = {f: {} for f in TENSOR_FILES}
    rows: dict[str, int] = {}
    unchanged = 0
    for key, tensor in tqdm(state.items(), desc="packaging", unit="tensor", disable=not progress):
        encoded = encode_tensor(key, tensor, base_sd.get(key), dtype, min_row_change=min_row_change)
        if encoded is None:
            unchanged += 1
            continue
        entry, out = encoded
        entry["file"] = tensor_file(key)
        tensors[key] = entry
        files[entry["file"]].update(out)
        if "rows" in entry:
            rows[key] = entry["rows"]
    missing = sorted(k for k in base_sd if k not in model.state_dict())
    base_info: dict[str, Any] = {"name_or_path": base, "weights_sha256": base_weights_sha256(base, base_dir)}
    if is_embedded_name(base):
        spec = EMBEDDED_MODELS.get(base[len(EMBEDDED_PREFIX) :])
        base_info.update(
            requirement=spec.requirement, original_model=spec.original_model, license=spec.license
        )
    same_tokenizer = _same_tokenizer(model_dir, base_dir)
    active = getattr(model, "active_adapters", None)
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "library": "molora_adapters",
        "version": __version__,
        "name": name,
        "dtype": dtype,
        "min_row_change": min_row_change,
        "base": base_info,
        "model_prefix": prefix,
        "tokenizer": {"from_base": True, "sha256": sha256_file(base_dir / "tokenizer.json")}
        if same_tokenizer
        else {"from_base": False},
        "setup": {
            "active_adapters": active.to_dict() if hasattr(active, "to_dict") else None,
            "active_head": getattr(model, "active_head", None),
            "mixtures": sorted(getattr(model, "adapter_mixtures", None) or {}),
            "heads": sorted(getattr(model, "heads", None) or {}),
        },
        "stats": {
            "tensors_stored": len(tensors),
            "tensors_from_base": unchanged,
            "base_tensors_not_in_model": len(missing),
            "changed_rows": rows,
            "parameters_stored": sum(
                entry.get("rows", 0) * entry["shape"][1] if "rows" in entry else _numel(entry["shape"])
                for entry in tensors.values()
            ),
        },
        "tensors": dict(sorted(tensors.items())),
    }
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        written = ["config.json"]
        if dropped:
            config = model.config.to_dict()
            config["adapters"] = model.adapters_config.to_dict()
            atomic_write_text(tmp / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
        else:
            shutil.copyfile(model_dir / "config.json", tmp / "config.json")
        for file, content in files.items():
            if content:
                (tmp / file).write_bytes(save(content, metadata={"format": "pt"}))
                written.append(file)
        if not same_tokenizer:
            for file in TOKENIZER_FILES:
                if (model_dir / file).is_file():
                    shutil.copyfile(model_dir / file, tmp / file)
                    written.append(file)
        manifest["files"] = {
            f: {"size": (tmp / f).stat().st_size, "sha256": sha256_file(tmp / f)} for f in sorted(written)
        }
        if model_card:
            from .card import model_card as make_card

            card = make_card(root, manifest, **(card_kwargs or {}))
            atomic_write_text(tmp / "README.md", card)
        # written last: a directory with a manifest is complete
        atomic_write_text(tmp / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    if log is not None:
        size = sum(m["size"] for m in manifest["files"].values())
        log(
            f"packaged {len(tensors)} tensors ({unchanged} unchanged from `{base}`), {dtype}, "
            f"{size / 1e6:.1f} MB in {out_dir}"
            + (f"; left out, not in the active setup: {', '.join(dropped)}" if dropped else "")
            + (f"; changed rows: {', '.join(f'{k} {v}' for k, v in rows.items())}" if rows else "")
        )
    return out_dir


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
