"""Stage outputs, checkpoint extras, resume points and reloading a staged run.

Layout of a staged run in ``output_dir``::

    stage-0-embeddings/checkpoint-*/   # Trainer checkpoints of stage 0 (+ extras, see `save_checkpoint_extras`)
    stage-0-embeddings/                # what stage 0 changed, written when it ends:
        model/                         #   embeddings / backbone: `save_pretrained` (only if changed)
        mixtures/<name>/               #   the mixture: `save_adapter_mixture` (only if changed)
        heads/<name>/                  #   the heads: `save_head`
        trainable.safetensors          #   every changed non-backbone tensor, used to restore on resume
        stage_state.json               #   completion marker: plan fingerprint, stage index and name
    ...
    config.json, model.safetensors     # the final model (`save_pretrained`), plus mixtures/ and heads/
    staged_training.json               # manifest read by `molora_adapters.loading.load_staged_model`
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

from .._integration import relink_prefix_pools
from ..loading import HEADS_DIR, MANIFEST_NAME, MIXTURES_DIR, load_staged_model  # noqa: F401  (re-exported)
from ..utils.io import atomic_write_bytes, atomic_write_text
from ..version import __version__
from .stages import Stage
from .targets import adapter_parameter_names, mixture_names

STAGE_STATE_NAME = "stage_state.json"
TRAINABLE_NAME = "trainable.safetensors"
MODEL_DIR = "model"
_FULL_WEIGHT_FILES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)


def stage_dir_name(index: int, stage: Stage) -> str:
    """Folder of stage ``index`` inside the run's output directory."""
    return f"stage-{index}-{stage.name}"


def _atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save

    atomic_write_bytes(
        path, save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata={"format": "pt"})
    )


def save_pretrained(model: nn.Module, directory: str | os.PathLike) -> None:
    """``model.save_pretrained(directory)`` that leaves the model usable afterwards (see `relink_prefix_pools`)."""
    try:
        model.save_pretrained(str(directory))
    finally:
        relink_prefix_pools(model)


def has_full_weights(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a full `save_pretrained`/`Trainer._save` weights file."""
    return any((Path(directory) / name).is_file() for name in _FULL_WEIGHT_FILES)


def load_weights(model: nn.Module, directory: str | os.PathLike) -> None:
    """Load a `save_pretrained` weights file (single or sharded; safetensors or torch) into ``model`` in place.

    Raises:
        ValueError: when the file holds parameters the model does not have (a checkpoint of another model).
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    files: list[Path]
    for single, index in ((SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME), (WEIGHTS_NAME, WEIGHTS_INDEX_NAME)):
        if (directory / single).is_file():
            files = [directory / single]
            break
        if (directory / index).is_file():
            weight_map = json.loads((directory / index).read_text(encoding="utf-8"))["weight_map"]
            files = [directory / f for f in sorted(set(weight_map.values()))]
            break
    else:
        raise FileNotFoundError(f"No model weights ({', '.join(_FULL_WEIGHT_FILES)}) in `{directory}`.")
    for file in files:
        state = load_file(file) if file.suffix == ".safetensors" else torch.load(file, weights_only=True)
        _load_state(model, state, file)


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise ValueError(
            f"`{source}` holds parameters this model does not have: {sorted(result.unexpected_keys)[:5]}... "
            "Resume with the same model architecture, adapters, mixtures and heads as the original run."
        )


def _base_changed(model: nn.Module, changed: set[str]) -> bool:
    base_ids = {id(p) for p in getattr(model, "base_model", model).parameters()}
    adapters = adapter_parameter_names(model)
    return any(id(p) in base_ids and n not in adapters for n, p in model.named_parameters() if n in changed)


def _non_base_tensors(model: nn.Module, changed: set[str]) -> dict[str, torch.Tensor]:
    base_ids = {id(p) for p in getattr(model, "base_model", model).parameters()}
    adapters = adapter_parameter_names(model)
    return {
        n: p for n, p in model.named_parameters() if n in changed and (id(p) not in base_ids or n in adapters)
    }


def _changed_heads(model: nn.Module, changed: set[str]) -> list[str]:
    heads = getattr(model, "heads", None)
    if not heads:
        return []
    return [h for h in heads if any(n.startswith(f"heads.{h}.") for n in changed)]


def save_checkpoint_extras(model: nn.Module, output_dir: str | os.PathLike, changed: set[str]) -> None:
    """Complete a checkpoint whose trainer did not write the full model (``adapters.AdapterTrainer``).

    Writes the embeddings/backbone through `save_pretrained` into ``model/`` when the stage changes them, and every
    changed adapter/mixture/head tensor into ``trainable.safetensors`` (AdapterTrainer skips mixture routers).
    Does nothing when ``output_dir`` already holds full weights.
    """
    output_dir = Path(output_dir)
    if has_full_weights(output_dir):
        return
    if _base_changed(model, changed):
        save_pretrained(model, output_dir / MODEL_DIR)
    tensors = _non_base_tensors(model, changed)
    if tensors:
        _save_tensors(output_dir / TRAINABLE_NAME, tensors)


def save_stage_outputs(
    model: nn.Module,
    stage_dir: str | os.PathLike,
    *,
    stage: Stage,
    index: int,
    changed: set[str],
    fingerprint: str,
    mixture: str | None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Save exactly what stage ``index`` changed, then its completion marker (see the module docstring);
    ``extra`` keys (e.g. the data-stream position) go into the marker too."""
    stage_dir = Path(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    if _base_changed(model, changed):
        save_pretrained(model, stage_dir / MODEL_DIR)
    if mixture is not None:
        (stage_dir / MIXTURES_DIR).mkdir(exist_ok=True)
        model.save_adapter_mixture(str(stage_dir / MIXTURES_DIR / mixture), mixture)
    heads = _changed_heads(model, changed)
    for head in heads:
        (stage_dir / HEADS_DIR).mkdir(exist_ok=True)
        model.save_head(str(stage_dir / HEADS_DIR / head), head)
    tensors = _non_base_tensors(model, changed)
    if tensors:
        _save_tensors(stage_dir / TRAINABLE_NAME, tensors)
    _atomic_write_json(
        stage_dir / STAGE_STATE_NAME,
        {
            "completed": True,
            "heads": heads,
            "mixture": mixture,
            "molora_adapters_version": __version__,
            "plan_fingerprint": fingerprint,
            "stage": stage.to_dict(),
            "stage_index": index,
            "trainable_parameters": int(sum(p.numel() for n, p in model.named_parameters() if n in changed)),
            **(extra or {}),
        },
    )


def restore_delta(model: nn.Module, directory: str | os.PathLike) -> None:
    """Apply what a stage directory or checkpoint saved (full weights, ``model/``, ``trainable.safetensors``)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    if has_full_weights(directory):
        load_weights(model, directory)
    if (directory / MODEL_DIR).is_dir():
        load_weights(model, directory / MODEL_DIR)
    if (directory / TRAINABLE_NAME).is_file():
        _load_state(model, load_file(directory / TRAINABLE_NAME), directory / TRAINABLE_NAME)


def read_stage_state(stage_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The completion marker of a stage directory, or `None` when the stage did not finish."""
    path = Path(stage_dir) / STAGE_STATE_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def checkpoint_stage(checkpoint: str | os.PathLike, callback_name: str) -> dict[str, Any]:
    """The stage record (``plan_fingerprint``, ``stage_names``, ``stage_index``) stored in a checkpoint."""
    from transformers.trainer_callback import TrainerState

    path = Path(checkpoint) / "trainer_state.json"
    if not path.is_file():
        raise ValueError(
            f"`resume_from_checkpoint={str(checkpoint)!r}` is not a Trainer checkpoint (no trainer_state.json). "
            "Pass a `.../stage-<i>-<name>/checkpoint-<step>` folder or `True`."
        )
    state = TrainerState.load_from_json(str(path))
    record = state.stateful_callbacks.get(callback_name)
    if isinstance(record, list):
        record = record[-1] if record else None
    if not record:
        raise ValueError(
            f"Checkpoint `{checkpoint}` was not written by a staged trainer (no `{callback_name}` state); "
            "resume it with a plain `Trainer`, or start the staged run afresh."
        )
    return record["args"]


def find_resume_point(
    output_dir: str | os.PathLike, stages: Sequence[Stage], fingerprint: str
) -> tuple[int, str | None]:
    """Latest resume point of a run: ``(stage_index, checkpoint or None)``.

    ``checkpoint=None`` means "start stage ``stage_index`` from scratch after the completed ones";
    ``stage_index == len(stages)`` means every stage completed.

    Raises:
        ValueError: when ``output_dir`` holds no staged checkpoint, or one from a different plan.
    """
    from transformers.trainer_utils import get_last_checkpoint

    root = Path(output_dir)
    for index in reversed(range(len(stages))):
        stage_dir = root / stage_dir_name(index, stages[index])
        marker = read_stage_state(stage_dir)
        if marker is not None:
            check_fingerprint(marker.get("plan_fingerprint"), fingerprint, stage_dir)
            return index + 1, None
        if stage_dir.is_dir() and (last := get_last_checkpoint(str(stage_dir))) is not None:
            return index, last
    found = sorted(p.name for p in root.glob("stage-*")) if root.is_dir() else []
    hint = f" It holds {found}, which do not match this plan's stages." if found else ""
    raise ValueError(f"No staged checkpoint found in output directory `{root}`.{hint}")


def check_fingerprint(found: str | None, expected: str, where: str | os.PathLike) -> None:
    """Raise a clear error when ``where`` was written under another stage plan."""
    if found != expected:
        raise ValueError(
            f"`{where}` was written by a different stage plan (fingerprint {found!r}, this plan {expected!r}). "
            "Resume with the same `stages` (names, order, targets, mixture), or use a new `output_dir`."
        )


def save_final_model(
    model: nn.Module, output_dir: str | os.PathLike, *, stages: Sequence[Stage], fingerprint: str
) -> None:
    """Write the finished model: `save_pretrained`, every mixture and head, and the manifest."""
    output_dir = Path(output_dir)
    save_pretrained(model, output_dir)
    mixtures = mixture_names(model)
    for name in mixtures:
        (output_dir / MIXTURES_DIR).mkdir(exist_ok=True)
        model.save_adapter_mixture(str(output_dir / MIXTURES_DIR / name), name)
    heads = list(getattr(model, "heads", None) or [])
    for head in heads:
        (output_dir / HEADS_DIR).mkdir(exist_ok=True)
        model.save_head(str(output_dir / HEADS_DIR / head), head)
    active = getattr(model, "active_adapters", None)
    _atomic_write_json(
        output_dir / MANIFEST_NAME,
        {
            "active_adapters": active.to_dict() if hasattr(active, "to_dict") else None,
            "active_head": getattr(model, "active_head", None) if heads else None,
            "heads": heads,
            "mixtures": mixtures,
            "molora_adapters_version": __version__,
            "plan_fingerprint": fingerprint,
            "stages": [s.to_dict() for s in stages],
        },
    )
