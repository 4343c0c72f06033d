"""Reloading the final model of a staged run (``StagedTrainer`` / ``train_staged``).

Inference (:class:`~molora_adapters.oie.pipeline.OIEPipeline`) and training (:mod:`molora_adapters.training`) both
import this module; it imports neither. The run's layout is described in :mod:`molora_adapters.training.checkpointing`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

__all__ = ["HEADS_DIR", "MANIFEST_NAME", "MIXTURES_DIR", "is_staged_run", "load_staged_model"]

MANIFEST_NAME = "staged_training.json"
MIXTURES_DIR = "mixtures"
HEADS_DIR = "heads"


def is_staged_run(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds the output of a finished staged run (its manifest)."""
    return (Path(directory) / MANIFEST_NAME).is_file()


def load_staged_model(
    output_dir: str | os.PathLike, model_class: type | None = None, **kwargs: Any
) -> nn.Module:
    """Reload the final model of a staged run with the same predictions as at the end of training.

    Args:
        output_dir (`str` or `os.PathLike`): the run's ``output_dir``.
        model_class (`type`, *optional*, defaults to `adapters.AutoAdapterModel`): class whose
            ``from_pretrained`` rebuilds the model.
        kwargs: passed to ``from_pretrained``.

    Returns:
        The model in eval mode, with its mixtures loaded and the saved adapter setup and head active.
    """
    output_dir = Path(output_dir)
    manifest_path = output_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        raise FileNotFoundError(f"`{output_dir}` is not a finished staged run (no {MANIFEST_NAME}).")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if model_class is None:
        from adapters import AutoAdapterModel as model_class
    model = model_class.from_pretrained(str(output_dir), **kwargs)
    present = set(getattr(model, "adapter_mixtures", None) or {})
    for name in manifest["mixtures"]:
        if name not in present:
            model.load_adapter_mixture(str(output_dir / MIXTURES_DIR / name))
    heads = getattr(model, "heads", None)
    for name in manifest["heads"]:
        if heads is None or name not in heads:
            model.load_head(str(output_dir / HEADS_DIR / name))
    if manifest.get("active_adapters") is not None:
        from adapters.composition import AdapterCompositionBlock

        model.set_active_adapters(AdapterCompositionBlock.from_dict(manifest["active_adapters"]))
    if manifest.get("active_head"):
        model.active_head = manifest["active_head"]
    return model.eval()
