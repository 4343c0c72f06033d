"""Training X-STA with ``transformers.Trainer``: one language pair per batch and the loss parts in the logs.

:class:`XSTATrainerMixin` overrides public hooks only: ``get_train_dataloader`` (a :class:`PairBatchSampler` over
the training items), ``compute_loss`` (records the head's loss parts, logged as their means), and ``train`` /
``create_optimizer`` for row-sparse word-embedding updates (:class:`~molora_adapters.training.RowSparseAdamW`) when
the word embeddings train (the authors fine-tune every parameter). It composes with the project's staged trainer
(``class T(XSTATrainerMixin, StagedTrainer)``, which then handles the embeddings itself) and with adapters (LoRA,
Mixture).
Importing this module registers the stage target ``"xsta"`` (GDKS modules and X-STA heads).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import Trainer

from ..training.optim import RowSparseAdamW, build_stage_param_groups
from ..training.targets import STAGE_TARGETS, register_stage_target, word_embedding_names
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
    """Trainer hooks for X-STA (see module docstring).

    Args:
        sparse_embedding_updates (`bool`, *optional*, defaults to `True`): when the word embeddings are trainable,
            train them with sparse gradients and :class:`~molora_adapters.training.RowSparseAdamW` (only the rows a
            batch used are read and written; ``max_grad_norm`` clips dense and sparse gradients together). Used on
            a single process with an ``adamw_torch*`` optimiser; otherwise dense AdamW runs as usual.
        *args, **kwargs: passed to the base trainer.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from ..training.mixin import DisentangledTuningMixin

        # a staged trainer takes the same option and handles the embeddings per stage itself
        staged = isinstance(self, DisentangledTuningMixin)
        sparse = (
            kwargs.get("sparse_embedding_updates", True)
            if staged
            else kwargs.pop("sparse_embedding_updates", True)
        )
        super().__init__(*args, **kwargs)
        self._xsta_parts: dict[str, list[float]] = defaultdict(list)
        self.xsta_sparse_embeddings = bool(sparse) and not staged
        self._xsta_sparse_now = False
        self._xsta_max_grad_norm: float | None = None

    def _xsta_use_sparse(self) -> bool:
        model = self.model
        words = word_embedding_names(model)
        if not (self.xsta_sparse_embeddings and words):
            return False
        if not all(p.requires_grad for n, p in model.named_parameters() if n in words):
            return False
        if self.args.world_size > 1 or self.is_deepspeed_enabled:
            return False  # sparse gradients are not all-reduced by every backend
        if not isinstance(model.get_input_embeddings(), torch.nn.Embedding):
            return False
        cls, _ = self.optimizer_cls_and_kwargs or self.get_optimizer_cls_and_kwargs(self.args, model)
        return isinstance(cls, type) and issubclass(cls, torch.optim.AdamW)

    def train(self, *args: Any, **kwargs: Any):
        """``Trainer.train``, with sparse word-embedding gradients for the run when they apply (see class doc)."""
        if self.optimizer is not None or not self._xsta_use_sparse():
            return super().train(*args, **kwargs)
        embedding = self.model.get_input_embeddings()
        was_sparse, max_norm = embedding.sparse, self.args.max_grad_norm
        # clip_grad_norm_ cannot take sparse gradients: RowSparseAdamW clips the same global norm instead
        self._xsta_sparse_now, self._xsta_max_grad_norm = True, max_norm
        embedding.sparse, self.args.max_grad_norm = True, 0.0
        try:
            return super().train(*args, **kwargs)
        finally:
            embedding.sparse, self.args.max_grad_norm = was_sparse, max_norm
            self._xsta_sparse_now = False

    def create_optimizer(self):
        """Trainer's optimiser, or :class:`RowSparseAdamW` over Trainer's parameter groups during a sparse run."""
        if self.optimizer is not None or not self._xsta_sparse_now:
            return super().create_optimizer()
        _, kwargs = self.optimizer_cls_and_kwargs or self.get_optimizer_cls_and_kwargs(self.args, self.model)
        kwargs = {k: v for k, v in kwargs.items() if k not in ("fused", "foreach")}
        groups = build_stage_param_groups(
            self.model,
            decay=set(self.get_decay_parameter_names(self.model)),
            weight_decay=self.args.weight_decay,
        )
        self.optimizer = RowSparseAdamW(groups, max_grad_norm=self._xsta_max_grad_norm, **kwargs)
        return self.optimizer

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
