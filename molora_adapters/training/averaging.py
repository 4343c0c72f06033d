"""Checkpoint averaging at the end of a stage ("Free Lunch", Schmidt et al., 2023, arXiv 2305.16834).

Averaging the weights of the last checkpoints of a run makes zero-shot cross-lingual transfer more robust without
target-language development data for model selection: the average sits in a flatter region than any single
checkpoint. The callback averages the parameters the stage trained over its last ``last_n`` checkpoints and loads
the average into the model before the stage's outputs are saved.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

from .callback import StageCallback
from .checkpointing import MODEL_DIR, TRAINABLE_NAME

logger = logging.getLogger(__name__)

_CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def stage_checkpoints(stage_dir: str | Path) -> list[Path]:
    """The ``checkpoint-<step>`` folders of a stage, oldest first."""
    stage_dir = Path(stage_dir)
    found = [
        (int(m.group(1)), p)
        for p in stage_dir.iterdir()
        if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))
    ]
    return [p for _, p in sorted(found)]


def _tensor_files(checkpoint: Path) -> list[Path]:
    """Safetensors files that together hold every parameter a staged checkpoint saved."""
    import json

    files: list[Path] = []
    for folder in (checkpoint, checkpoint / MODEL_DIR):
        if (folder / SAFE_WEIGHTS_NAME).is_file():
            files.append(folder / SAFE_WEIGHTS_NAME)
        elif (folder / SAFE_WEIGHTS_INDEX_NAME).is_file():
            index = json.loads((folder / SAFE_WEIGHTS_INDEX_NAME).read_text(encoding="utf-8"))
            files += [folder / f for f in sorted(set(index["weight_map"].values()))]
    if (checkpoint / TRAINABLE_NAME).is_file():
        files.append(checkpoint / TRAINABLE_NAME)
    return files


def average_checkpoints(checkpoints: Sequence[str | Path], names: set[str]) -> dict[str, torch.Tensor]:
    """Uniform average (in float32) of parameters ``names`` over ``checkpoints``, one checkpoint in memory at a time.

    Args:
        checkpoints (`Sequence[str | Path]`): staged checkpoint folders (``save_safetensors=True``).
        names (`set[str]`): parameter names to average.

    Raises:
        ValueError: when a checkpoint lacks one of ``names``.
    """
    from safetensors import safe_open

    sums: dict[str, torch.Tensor] = {}
    for checkpoint in checkpoints:
        seen: set[str] = set()
        for file in _tensor_files(Path(checkpoint)):
            with safe_open(str(file), framework="pt") as f:
                for key in names.intersection(f.keys()) - seen:
                    tensor = f.get_tensor(key).float()
                    sums[key] = sums[key].add_(tensor) if key in sums else tensor
                    seen.add(key)
        if missing := names - seen:
            raise ValueError(
                f"Checkpoint `{checkpoint}` lacks {len(missing)} trained parameters (e.g. {sorted(missing)[:3]}); "
                "checkpoint averaging needs `save_safetensors=True` checkpoints written by a staged trainer."
            )
    return {k: v / len(checkpoints) for k, v in sums.items()}


class CheckpointAveragingCallback(TrainerCallback):
    """Replace a stage's final weights by the average of its last ``last_n`` checkpoints ("Free Lunch").

    Only the parameters the stage trains are averaged; frozen ones are identical in every checkpoint anyway. Set
    ``save_total_limit`` (if any) to at least ``last_n``. Under DDP every process reads the checkpoints after a
    barrier, so the output folder must be on a shared file system.

    Args:
        last_n (`int`, *optional*, defaults to 5): number of most recent checkpoints to average (``>= 2``).
        stages (`Sequence[str]`, *optional*): names of the stages to average; all stages when omitted.
    """

    def __init__(self, last_n: int = 5, stages: Sequence[str] | None = None) -> None:
        if not isinstance(last_n, int) or last_n < 2:
            raise ValueError(f"`last_n` must be an int >= 2, got {last_n!r}.")
        self.last_n = last_n
        self.stages = None if stages is None else set(stages)
        self.averaged: dict[str, list[str]] = {}

    def _stage_name(self, state: TrainerState) -> str | None:
        record = state.stateful_callbacks.get(StageCallback.__name__)
        if not record:
            return None
        args = record["args"]
        return args["stage_names"][args["stage_index"]]

    def _applies(self, state: TrainerState) -> bool:
        name = self._stage_name(state)
        return self.stages is None or (name is not None and name in self.stages)

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if not self._applies(state):
            return
        if args.save_strategy == "no" or not args.save_safetensors:
            raise ValueError(
                "`CheckpointAveragingCallback` averages saved checkpoints: set `save_strategy` to 'steps' or "
                "'epoch' and keep `save_safetensors=True`."
            )
        if args.save_total_limit is not None and args.save_total_limit < self.last_n:
            raise ValueError(
                f"`save_total_limit={args.save_total_limit}` keeps fewer checkpoints than `last_n={self.last_n}`; "
                "raise it or lower `last_n`."
            )

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model=None, **kw
    ):
        if model is None or not self._applies(state):
            return
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()  # rank 0 may still be writing the last checkpoint
        checkpoints = stage_checkpoints(args.output_dir)[-self.last_n :]
        if not checkpoints:
            raise ValueError(f"No checkpoint to average in `{args.output_dir}`; lower `save_steps`.")
        trained = {n for n, p in model.named_parameters() if p.requires_grad}
        averaged = average_checkpoints(checkpoints, trained)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in averaged:
                    param.copy_(averaged[name].to(dtype=param.dtype, device=param.device))
        stage = self._stage_name(state) or "stage"
        self.averaged[stage] = [p.name for p in checkpoints]
        logger.info(
            "Stage `%s`: averaged %d checkpoints (%s)",
            stage,
            len(checkpoints),
            ", ".join(self.averaged[stage]),
        )
