"""Training X-STA with ``transformers.Trainer``: one language pair per batch and the loss parts in the logs.

:class:`XSTATrainerMixin` overrides two public hooks only: ``get_train_dataloader`` (a :class:`PairBatchSampler`
over the training items) and ``compute_loss`` (records the head's loss parts, logged as their means). It composes
with the project's staged trainer (``class T(XSTATrainerMixin, StagedTrainer)``) and with adapters (LoRA, Mixture).
Importing this module registers the stage target ``"xsta"`` (GDKS modules and X-STA heads).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import Trainer

from ..training.targets import STAGE_TARGETS, register_stage_target
from .data import PairBatchSampler
from .head import LOSS_PARTS, XSTAQAHead
from .layer import GDKS_ATTR


def _xsta_target(model: torch.nn.Module, stage) -> set[str]:
    """Stage target ``"xsta"``: every GDKS module and every X-STA head (the recipe's own parameters)."""
    heads = [n for n, h in getattr(model, "heads", {}).items() if isinstance(h, XSTAQAHead)]
    markers = (f"{GDKS_ATTR}.", *(f"heads.{n}." for n in heads))
    return {n for n, _ in model.named_parameters() if any(m in n for m in markers)}


if "xsta" not in STAGE_TARGETS:
    register_stage_target("xsta", _xsta_target)


class XSTATrainerMixin:
    """Trainer hooks for X-STA (see module docstring); ``*args, **kwargs`` pass through to the base trainer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._xsta_parts: dict[str, list[float]] = defaultdict(list)

    def get_train_dataloader(self) -> DataLoader:
        """Batches of ``per_device_train_batch_size`` items from one language pair, length-grouped."""
        dataset = self.train_dataset
        if dataset is None:
            raise ValueError("Trainer: training requires a `train_dataset`.")
        sampler = PairBatchSampler(
            dataset,
            self.args.per_device_train_batch_size,
            seed=self.args.seed,
            group_by_length=True,
            drop_last=self.args.dataloader_drop_last,
        )
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
        )
        return self.accelerator.prepare(loader)

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        """The base loss, recording the X-STA loss parts when the model returns them."""
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        if model.training and isinstance(outputs, dict):
            for key in LOSS_PARTS:
                value = outputs.get(key)
                if isinstance(value, torch.Tensor):
                    self._xsta_parts[key].append(float(value.detach()))
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean of each loss part since the last log to training logs."""
        if "loss" in logs:
            for key, values in self._xsta_parts.items():
                if values:
                    logs[key] = round(sum(values) / len(values), 6)
            self._xsta_parts.clear()
        super().log(logs, start_time)


class XSTATrainer(XSTATrainerMixin, Trainer):
    """``transformers.Trainer`` with the X-STA hooks."""
