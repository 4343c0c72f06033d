"""`DisentangledTuningMixin`: run a plan of `Stage`s with any `transformers.Trainer` subclass.

Each stage is one ordinary ``Trainer.train()`` call with the stage's parameters trainable, a fresh optimiser and
scheduler, and ``output_dir`` set to the stage's folder, so checkpoints, rotation, evaluation, logging integrations
and multi-process training work as usual.

Multi-GPU: the same script runs under ``torchrun --nproc_per_node 8 train.py`` or ``accelerate launch train.py``
(DDP). The model is re-wrapped per stage, because DDP registers gradient hooks only for the parameters that required
gradients when it was built; keep ``ddp_find_unused_parameters`` at its default (or `True`) when a stage trains
parameters that some batches do not reach (the pooler of a tagging model, top-k-routed experts). DeepSpeed ZeRO-1/2
works the same way (one engine per stage). ZeRO-3 and FSDP shard the parameters, which breaks per-stage freezing
and the per-stage ``save_pretrained`` outputs, so they are refused with a clear error.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from adapters.trainer import AdapterTrainer, AdapterTrainerCallback
from torch import nn
from transformers.trainer_utils import TrainOutput, enable_full_determinism, set_seed

from .._integration import relink_prefix_pools
from ..mixture.losses import routing_summary
from ..utils.quiet import inactive_adapters_once
from .callback import BudgetSchedule, StageCallback, StageClockCallback
from .checkpointing import (
    check_fingerprint,
    checkpoint_stage,
    find_resume_point,
    has_full_weights,
    is_trainable_state,
    read_stage_state,
    restore_delta,
    save_checkpoint_extras,
    save_final_model,
    save_stage_outputs,
    save_trainable_state,
    stage_dir_name,
)
from .optim import RowSparseAdamW, build_stage_param_groups
from .sampling import StreamSampler
from .stages import MT4CROSSOIE_STAGES, Stage, plan_fingerprint, validate_plan
from .targets import STAGE_TARGETS, resolve_stage_parameters, word_embedding_names

logger = logging.getLogger(__name__)

_MIXTURE_LOG_KEYS = ("mixture_aux_loss", "routing_entropy", "routing_balance")


@contextlib.contextmanager
def _overridden(args: Any, values: dict[str, Any]) -> Iterator[None]:
    old = {k: getattr(args, k) for k in values}
    try:
        for k, v in values.items():
            setattr(args, k, v)
        yield
    finally:
        for k, v in old.items():
            setattr(args, k, v)


class DisentangledTuningMixin:
    """Adds staged ("disentangled") tuning to a `transformers.Trainer` subclass.

    Put it first in the bases, e.g. ``class MyTrainer(DisentangledTuningMixin, MyOwnTrainer)``. All other arguments
    go unchanged to the trainer's ``__init__``. ``train()`` runs every stage in order (or resumes) and writes the
    final model to ``args.output_dir``; see [`load_staged_model`] to reload it.

    Per stage it logs ``stage`` (the stage index) with every log entry, the stage's trainable-parameter count in its
    first log entry, and in mixture stages ``mixture_aux_loss``, ``routing_entropy`` and ``routing_balance`` (means
    since the previous log). ``trainer.stage_history`` keeps one summary per finished stage, those finished before
    a resume included (``"restored": True``, read from their stage folders).

    With ``adapters.AdapterTrainer`` as the base, the mixin also (1) replaces its callback that refuses an
    unfrozen model, (2) completes its checkpoints, which skip embeddings, backbone and mixture routers, and
    (3) defines ``train_adapter_fusion`` when the model was not frozen at construction.

    Training-efficiency defaults (each can be turned off):

    - **one data stream** (``continue_data_stream``): every stage continues the seeded example stream where the
      previous stage stopped instead of replaying the same first batches (see [`StreamSampler`]); with
      ``TrainingArguments(group_by_length=True)`` batches are length-grouped, and ``language_sampling_alpha``
      balances languages (column ``language``);
    - **row-sparse embedding updates** (``sparse_embedding_updates``): in stages that train the word embeddings the
      embedding gives sparse gradients and [`RowSparseAdamW`] updates only the rows a batch used (exact moment and
      weight-decay catch-up, see its docstring for the one documented difference from dense AdamW); used with the
      ``adamw_torch*`` optimisers on a single process, otherwise dense AdamW runs as usual;
    - per-stage ``head_learning_rate`` and ``max_seconds`` (wall-clock budget), see [`Stage`].

    Args:
        stages (`Sequence[Stage]`, *optional*, defaults to `MT4CROSSOIE_STAGES`): the plan.
        continue_data_stream (`bool`, *optional*, defaults to `True`): one example stream across stages.
        language_sampling_alpha (`float`, *optional*): language-balanced blocks of the stream, languages weighted
            ``n_l ** alpha`` (``0``: equal, ``1``: natural mix); needs a ``language`` column.
        sparse_embedding_updates (`bool`, *optional*, defaults to `True`): row-sparse word-embedding updates.
        *args, **kwargs: passed to the base trainer.
    """

    def __init__(
        self,
        *args: Any,
        stages: Sequence[Stage] = MT4CROSSOIE_STAGES,
        continue_data_stream: bool = True,
        language_sampling_alpha: float | None = None,
        sparse_embedding_updates: bool = True,
        **kwargs: Any,
    ) -> None:
        self.stages = validate_plan(stages)
        self.plan_fingerprint = plan_fingerprint(self.stages)
        if language_sampling_alpha is not None and not language_sampling_alpha >= 0:
            raise ValueError(
                f"`language_sampling_alpha` must be >= 0 or None, got {language_sampling_alpha!r}."
            )
        if language_sampling_alpha is not None and not continue_data_stream:
            raise ValueError(
                "`language_sampling_alpha` needs `continue_data_stream=True` (the stream sampler)."
            )
        self.continue_data_stream = continue_data_stream
        self.language_sampling_alpha = language_sampling_alpha
        self.sparse_embedding_updates = sparse_embedding_updates
        self._stream_start = 0
        self._stage_sparse = False
        self._stage_max_grad_norm: float | None = None
        super().__init__(*args, **kwargs)
        if self.optimizer is not None or self.lr_scheduler is not None:
            raise ValueError(
                "`optimizers=(optimizer, scheduler)` cannot be used with staged training: every stage rebuilds "
                "its optimiser over its own parameters. Pass `optimizer_cls_and_kwargs=(cls, kwargs)` or set "
                "`TrainingArguments.optim` instead."
            )
        if self.model_init is not None:
            raise ValueError(
                "`model_init` cannot be used with staged training: `Trainer.train()` would re-initialise the model "
                "at every stage. Pass `model=` instead."
            )
        self._check_parallelism()
        self.add_callback(StageCallback(self.plan_fingerprint, [s.name for s in self.stages]))
        self.clock = StageClockCallback(self)
        self.add_callback(self.clock)
        self._adapt_adapter_trainer()
        if not hasattr(self.accelerator.unwrap_model(self.model), "accepts_loss_kwargs") and hasattr(
            self.model, "heads"
        ):
            # adapters' flexible heads average their loss and ignore `num_items_in_batch`; telling Trainer so
            # keeps gradient accumulation and multi-process loss scaling correct.
            self.model_accepts_loss_kwargs = False
        for stage in self.stages:  # fail on a bad plan now rather than after hours of stage 1
            resolve_stage_parameters(self.model, stage)
        self.stage_history: list[dict[str, Any]] = []
        self._stage_index: int | None = None
        self._stage_mixture: str | None = None
        self._stage_trainable: set[str] = set()
        self._stage_log: dict[str, float] = {}
        # number of values -> (device sums, steps); 1 value (aux only) when a step had no router logits
        self._mixture_sums: dict[int, tuple[torch.Tensor, int]] = {}

    # ----------------------------------------------------------------------------------------------- setup
    @property
    def stage_callback(self) -> StageCallback:
        """The trainer's `StageCallback`."""
        for cb in self.callback_handler.callbacks:
            if isinstance(cb, StageCallback):
                return cb
        raise RuntimeError("The `StageCallback` was removed from this trainer; staged training needs it.")

    @property
    def current_stage(self) -> Stage | None:
        """The stage being trained, or `None` outside `train()`."""
        return None if self._stage_index is None else self.stages[self._stage_index]

    def _check_parallelism(self) -> None:
        if getattr(self, "is_fsdp_enabled", False):
            raise NotImplementedError(
                "Staged training does not support FSDP: parameters are flattened and sharded, so freezing changes "
                "between stages and per-stage `save_pretrained` outputs would be wrong. Use DDP or DeepSpeed ZeRO-1/2."
            )
        plugin = (
            getattr(self.accelerator.state, "deepspeed_plugin", None) if self.is_deepspeed_enabled else None
        )
        if plugin is not None and getattr(plugin, "zero_stage", 0) == 3:
            raise NotImplementedError(
                "Staged training does not support DeepSpeed ZeRO-3 (sharded parameters); use ZeRO stage 1 or 2."
            )

    def _adapt_adapter_trainer(self) -> None:
        if not isinstance(self, AdapterTrainer):
            return
        for cb in list(self.callback_handler.callbacks):
            if type(cb) is AdapterTrainerCallback:
                self.callback_handler.remove_callback(cb)
                self.callback_handler.add_callback(_StagedAdapterTrainerCallback(self))
        if not hasattr(self, "train_adapter_fusion"):
            # AdapterTrainer sets it only for frozen models; stages 1-2 start from an unfrozen one.
            self.train_adapter_fusion = False

    # ----------------------------------------------------------------------------------------------- train
    def train(
        self,
        resume_from_checkpoint: str | bool | None = None,
        trial: Any = None,
        ignore_keys_for_eval: list[str] | None = None,
        **kwargs: Any,
    ) -> TrainOutput:
        """Run every stage in order, or resume; then save the final model to ``args.output_dir``.

        Args:
            resume_from_checkpoint (`str` or `bool`, *optional*):
                `True` resumes from the latest checkpoint or finished stage under ``args.output_dir``; a path
                resumes from that ``stage-<i>-<name>/checkpoint-<step>`` folder. Optimiser, scheduler and RNG
                states come from the checkpoint; earlier stages are restored from their stage folders.
            trial: not supported (hyper-parameter search over a staged plan).
            ignore_keys_for_eval (`list[str]`, *optional*): passed to `Trainer.train`.

        Returns:
            `TrainOutput` with the total number of steps, the last stage's training loss and per-stage metrics.
        """
        if kwargs:
            raise TypeError(f"train() got unexpected keyword arguments: {', '.join(kwargs)}.")
        if trial is not None:
            raise NotImplementedError(
                "`trial` (hyper-parameter search) is not supported for staged training."
            )
        root = self.args.output_dir
        start, checkpoint = 0, None
        if resume_from_checkpoint:
            start, checkpoint = self._prepare_resume(root, resume_from_checkpoint)
        for stage in self.stages[start:]:
            resolve_stage_parameters(self.model, stage)  # bad input fails before any training
        output = None
        # stages that train no adapter run the model with its adapters inactive on purpose: adapters would log
        # "none are activated" on every forward
        with inactive_adapters_once():
            for index in range(start, len(self.stages)):
                output = self._train_stage(
                    index, root, checkpoint if index == start else None, ignore_keys_for_eval
                )
        self._stage_index = None
        if self.args.should_save:
            save_final_model(self._unwrapped(), root, stages=self.stages, fingerprint=self.plan_fingerprint)
        self.accelerator.wait_for_everyone()
        metrics = {f"{h['name']}_train_loss": h["train_loss"] for h in self.stage_history}
        metrics |= {
            f"{h['name']}_trainable_parameters": h["trainable_parameters"] for h in self.stage_history
        }
        return TrainOutput(
            global_step=sum(h["global_step"] for h in self.stage_history),
            training_loss=output.training_loss if output is not None else float("nan"),
            metrics=(output.metrics if output is not None else {}) | metrics,
        )

    def _unwrapped(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def _prepare_resume(self, root: str, resume: str | bool) -> tuple[int, str | None]:
        if resume is True:
            start, checkpoint = find_resume_point(root, self.stages, self.plan_fingerprint)
            run_dir = Path(root)
        else:
            checkpoint = str(resume)
            record = checkpoint_stage(checkpoint, StageCallback.__name__)
            check_fingerprint(record.get("plan_fingerprint"), self.plan_fingerprint, checkpoint)
            start = int(record["stage_index"])
            run_dir = Path(checkpoint).resolve().parent.parent
        model = self._unwrapped()
        for index in range(start):
            stage_dir = run_dir / stage_dir_name(index, self.stages[index])
            marker = read_stage_state(stage_dir)
            if marker is None:
                raise ValueError(
                    f"Cannot resume in stage {start}: earlier stage `{self.stages[index].name}` has no finished "
                    f"output in `{stage_dir}`."
                )
            check_fingerprint(marker.get("plan_fingerprint"), self.plan_fingerprint, stage_dir)
            if self.stages[index].trains_mixture:
                self.stage_callback.enter_stage(
                    model, self.stages, index
                )  # re-activate as in the original run
            restore_delta(model, stage_dir)
            self._stream_start = int(marker.get("stream_end", self._stream_start))
            if "history" in marker:  # the stage's summary from the interrupted run
                self.stage_history.append({**marker["history"], "restored": True})
        logger.info("Resuming staged training at stage %d (checkpoint: %s)", start, checkpoint)
        return start, checkpoint

    def _train_stage(
        self, index: int, root: str, checkpoint: str | None, ignore_keys_for_eval: list[str] | None
    ) -> TrainOutput:
        stage = self.stages[index]
        model = self._unwrapped()
        if checkpoint is None:
            # Each stage starts from the run seed, so a resumed plan matches an uninterrupted one.
            enable_full_determinism(self.args.seed) if self.args.full_determinism else set_seed(
                self.args.seed
            )
        trainable, mixture = self.stage_callback.enter_stage(model, self.stages, index)
        if checkpoint is not None and not has_full_weights(checkpoint):
            restore_delta(
                model, checkpoint
            )  # AdapterTrainer checkpoints: our extras, the trainer loads the rest
        n_trainable = sum(p.numel() for n, p in model.named_parameters() if n in trainable)
        logger.info("Stage %d `%s`: %d trainable parameters", index, stage.name, n_trainable)
        self._stage_index, self._stage_mixture, self._stage_trainable = index, mixture, trainable
        self._stage_log = {"stage_trainable_parameters": float(n_trainable)}
        self._mixture_sums.clear()
        # Fresh optimiser, scheduler and DDP wrapper for the new set of trainable parameters.
        self.optimizer, self.lr_scheduler = None, None
        self.model_wrapped = self.model
        stage_dir = os.path.join(root, stage_dir_name(index, stage))
        overrides = stage.argument_overrides() | {"output_dir": stage_dir}
        embedding = model.get_input_embeddings()
        was_sparse = getattr(embedding, "sparse", False)
        self._stage_sparse = self._use_sparse_embeddings(model, trainable)
        if self._stage_sparse:
            # clip_grad_norm_ cannot take sparse gradients: RowSparseAdamW clips (the same global norm) instead
            self._stage_max_grad_norm = self.args.max_grad_norm
            overrides["max_grad_norm"] = 0.0
            embedding.sparse = True
        start, used_sparse = self._stream_start, self._stage_sparse
        try:
            with _overridden(self.args, overrides):
                output = super().train(
                    resume_from_checkpoint=checkpoint, ignore_keys_for_eval=ignore_keys_for_eval
                )
                self._stream_start = start + self._examples_consumed(output.global_step)
                history = {
                    "stage": index,
                    "name": stage.name,
                    "trainable_parameters": n_trainable,
                    "global_step": output.global_step,
                    "train_loss": output.training_loss,
                    "train_seconds": output.metrics.get("train_runtime"),
                    # training time alone (no logging, evaluation or saves), what a `max_seconds` budget counts;
                    # after a resume it includes the stage's time before the interruption
                    "clock_seconds": round(self.clock.elapsed(), 3),
                    "max_seconds": stage.max_seconds,
                    "examples_seen": self._stream_start - start,
                    "sparse_embedding_updates": used_sparse,
                }
                if self.args.should_save:
                    save_stage_outputs(
                        model,
                        stage_dir,
                        stage=stage,
                        index=index,
                        changed=trainable,
                        fingerprint=self.plan_fingerprint,
                        mixture=mixture,
                        extra={"stream_start": start, "stream_end": self._stream_start, "history": history},
                    )
                self.accelerator.wait_for_everyone()
        finally:
            if self._stage_sparse:
                embedding.sparse = was_sparse
            self._stage_sparse = False
        self.stage_history.append(history)
        return output

    # ----------------------------------------------------------------------------------------------- efficiency
    def _use_sparse_embeddings(self, model: nn.Module, trainable: set[str]) -> bool:
        words = word_embedding_names(model)
        if not (self.sparse_embedding_updates and words and words <= trainable):
            return False
        if self.args.world_size > 1 or self.is_deepspeed_enabled:
            return False  # sparse gradients are not all-reduced by every backend; dense AdamW is always right
        if not isinstance(model.get_input_embeddings(), nn.Embedding):
            return False
        cls, _ = self.optimizer_cls_and_kwargs or self.get_optimizer_cls_and_kwargs(self.args, model)
        return isinstance(cls, type) and issubclass(cls, torch.optim.AdamW)

    def _examples_consumed(self, steps: int) -> int:
        """Stream positions a stage of ``steps`` optimisation steps used (whole epochs count ``len(dataset)``)."""
        if not self.continue_data_stream or self.train_dataset is None:
            return 0
        n = len(self.train_dataset)
        per_step = self.args.train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
        per_epoch = max(
            1,
            -(-n // (self.args.train_batch_size * self.args.world_size))
            // self.args.gradient_accumulation_steps,
        )
        epochs, rest = divmod(steps, per_epoch)
        return epochs * n + rest * per_step

    def _get_train_sampler(self, train_dataset=None):
        """A [`StreamSampler`] positioned where the previous stage stopped (length-grouped with
        ``args.group_by_length``, language-balanced with ``language_sampling_alpha``); else Trainer's sampler."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not self.continue_data_stream or dataset is None or not hasattr(dataset, "__len__"):
            return (
                super()._get_train_sampler(train_dataset)
                if train_dataset is not None
                else super()._get_train_sampler()
            )
        columns = getattr(dataset, "column_names", None) or []
        lengths = languages = None
        if self.args.group_by_length:
            name = self.args.length_column_name
            if name not in columns:
                raise ValueError(
                    f"`group_by_length=True` needs a `{name}` column (`length_column_name`) in the training dataset; "
                    "`build_oie_features` writes `length`."
                )
            lengths = dataset[name]
        if self.language_sampling_alpha is not None:
            if "language" not in columns:
                raise ValueError(
                    "`language_sampling_alpha` needs a `language` column in the training dataset."
                )
            languages = dataset["language"]
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return StreamSampler(
            len(dataset),
            seed=seed,
            start=self._stream_start,
            batch_size=self.args.train_batch_size,
            lengths=lengths,
            languages=languages,
            language_alpha=self.language_sampling_alpha,
        )

    def create_optimizer(self):
        """Trainer's optimiser, with the stage's ``head_learning_rate`` group and, when the stage trains the word
        embeddings, [`RowSparseAdamW`] for row-sparse embedding updates."""
        stage = self.current_stage
        if (
            self.optimizer is not None
            or stage is None
            or (stage.head_learning_rate is None and not self._stage_sparse)
        ):
            return super().create_optimizer()
        model = self.model
        cls, kwargs = self.optimizer_cls_and_kwargs or self.get_optimizer_cls_and_kwargs(self.args, model)
        kwargs = dict(kwargs)
        heads = (
            STAGE_TARGETS.get("heads")(self._unwrapped(), stage)
            if stage.head_learning_rate is not None
            else set()
        )
        groups = build_stage_param_groups(
            model,
            decay=set(self.get_decay_parameter_names(model)),
            weight_decay=self.args.weight_decay,
            head_names=heads,
            head_learning_rate=stage.head_learning_rate,
        )
        if self._stage_sparse:  # the optimiser's `fused` / `foreach` settings go on to the dense parameters
            cls = RowSparseAdamW
            kwargs["max_grad_norm"] = self._stage_max_grad_norm
        self.optimizer = cls(groups, **kwargs)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        """Trainer's scheduler; in a stage with ``max_seconds``, a [`BudgetSchedule`] whose horizon the stage clock
        re-fits to the measured speed (Trainer's schedules are fixed to ``num_training_steps`` when built)."""
        stage = self.current_stage
        if self.lr_scheduler is not None or stage is None or stage.max_seconds is None:
            self.clock.schedule = None
            return super().create_scheduler(num_training_steps, optimizer)
        schedule = BudgetSchedule(
            str(getattr(self.args.lr_scheduler_type, "value", self.args.lr_scheduler_type)),
            num_training_steps,
            warmup_ratio=self.args.warmup_ratio or 0.0,
            warmup_steps=self.args.warmup_steps or 0,
        )
        self.clock.schedule = schedule
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer if optimizer is None else optimizer, schedule
        )
        self._created_lr_scheduler = True
        return self.lr_scheduler

    def _maybe_log_save_evaluate(self, *args: Any, **kwargs: Any) -> None:
        # logging, evaluation and checkpoint saves are not training time: a stage's clock does not count them
        with self.clock.paused():
            super()._maybe_log_save_evaluate(*args, **kwargs)

    # ----------------------------------------------------------------------------------------------- hooks
    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | None = None,
    ):
        """Task loss plus, in mixture stages, the mixture's (already weighted) auxiliary loss."""
        stage = self.current_stage
        if stage is None or not stage.trains_mixture or not model.training:
            # evaluation reports the task loss alone and gathers no router logits
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # Outputs are read by name: the seam returns them as declared dataclass fields (`with_router_outputs`),
        # which DDP can rebuild (Trainer's `find_unused_parameters=True` does).
        inputs = {**inputs, "output_router_logits": True, "return_dict": True}
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        router_logits = getattr(outputs, "router_logits", None)
        aux = getattr(outputs, "mixture_aux_loss", None)
        if router_logits is None or aux is None:
            raise RuntimeError(
                f"Stage `{stage.name}` trains a mixture, but the model's outputs carry no router logits; is the "
                "mixture active and `molora_adapters` imported before the model was built?"
            )
        loss = loss + aux
        self._record_mixture_stats(aux, router_logits, inputs.get("attention_mask"))
        return (loss, outputs) if return_outputs else loss

    def _record_mixture_stats(self, aux: torch.Tensor, router_logits: Any, attention_mask: Any) -> None:
        """Accumulate ``[aux loss, routing entropy, routing balance]`` on the device: no host sync per step; the
        sums are read once, in :meth:`log`."""
        values = aux.detach().float().reshape(1)
        if router_logits:
            top_k = self._unwrapped().adapter_mixtures[self._stage_mixture].top_k
            summary = routing_summary(router_logits, attention_mask, top_k=top_k).to(values.device)
            values = torch.cat([values, summary])
        sums, count = self._mixture_sums.get(values.numel(), (None, 0))
        self._mixture_sums[values.numel()] = (values if sums is None else sums + values, count + 1)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the stage index, the stage's trainable-parameter count and mixture statistics to training logs."""
        if self._stage_index is not None:
            logs = {**logs, "stage": self._stage_index}
            if "loss" in logs or "train_loss" in logs:
                logs |= self._stage_log
                self._stage_log = {}
            if "loss" in logs:
                for sums, count in self._mixture_sums.values():
                    means = (sums / count).tolist()  # the one host sync of the logging step
                    logs |= {k: round(v, 6) for k, v in zip(_MIXTURE_LOG_KEYS, means, strict=False)}
                self._mixture_sums.clear()
        super().log(logs, start_time)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        stage = self.current_stage
        if stage is not None and stage.max_seconds is not None and state_dict is None:
            # a budgeted stage's checkpoint holds only what the stage trains: a full save costs training time
            save_trainable_state(
                self._unwrapped(), output_dir or self.args.output_dir, self._stage_trainable, self.args
            )
            return
        super()._save(output_dir, state_dict)
        relink_prefix_pools(self._unwrapped())
        if self._stage_index is not None and state_dict is None:
            save_checkpoint_extras(
                self._unwrapped(), output_dir or self.args.output_dir, self._stage_trainable
            )

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        if is_trainable_state(resume_from_checkpoint):
            return  # `_train_stage` restored it (with `restore_delta`) on top of the finished stages
        # adapters' AdapterTrainer overrides this with a one-argument signature
        args = (resume_from_checkpoint,) if model is None else (resume_from_checkpoint, model)
        super()._load_from_checkpoint(*args)


class _StagedAdapterTrainerCallback(AdapterTrainerCallback):
    """AdapterTrainer's callback without its frozen-model check; `StageCallback` checks every stage instead."""

    def on_train_begin(self, args, state, control, **kwargs):
        return None
