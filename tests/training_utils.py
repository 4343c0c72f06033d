"""Shared helpers for the staged-training tests: a tiny tagging model, a toy dataset and training arguments."""

from __future__ import annotations

import torch
from transformers import TrainerCallback

from tests.conftest import tiny_adapter_model

SEQ_LEN = 8
N_LABELS = 3


def tagging_model(seed: int = 0, model_type: str = "bert"):
    """A tiny `AutoAdapterModel` with one tagging head ``oie`` (3 labels)."""
    model = tiny_adapter_model(model_type, seed=seed)
    torch.manual_seed(seed + 1)
    model.add_tagging_head("oie", num_labels=N_LABELS)
    return model


def toy_dataset(n: int = 16, seed: int = 0):
    """Fixed-length sequences whose labels are a function of the token id (learnable, no padding)."""
    from datasets import Dataset

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 200, (n, SEQ_LEN), generator=g)
    return Dataset.from_dict(
        {
            "input_ids": ids.tolist(),
            "attention_mask": torch.ones_like(ids).tolist(),
            "labels": (ids % N_LABELS).tolist(),
        }
    )


def training_args(output_dir, **overrides):
    from transformers import TrainingArguments

    kw = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        max_steps=3,
        learning_rate=1e-2,
        save_strategy="no",
        logging_steps=1,
        report_to=[],
        seed=13,
        use_cpu=True,
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    kw.update(overrides)
    return TrainingArguments(**kw)


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


class Recorder(TrainerCallback):
    """Snapshots parameters and optimiser facts at the start and end of every stage, and keeps the logs."""

    def __init__(self):
        self.begin, self.end, self.optimizers, self.logs = [], [], [], []

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kw):
        self.begin.append(snapshot(model))
        params = {id(p) for g in optimizer.param_groups for p in g["params"]}
        trainable = {n for n, p in model.named_parameters() if id(p) in params}
        decays = sorted({g["weight_decay"] for g in optimizer.param_groups})
        self.optimizers.append((id(optimizer), trainable, optimizer.param_groups[0]["initial_lr"], decays))

    def on_train_end(self, args, state, control, model=None, **kw):
        self.end.append(snapshot(model))

    def on_log(self, args, state, control, logs=None, **kw):
        self.logs.append(dict(logs))


class Interrupt(Exception):
    """Raised by `InterruptAt` to simulate a crash."""


class InterruptAt(TrainerCallback):
    """Raises `Interrupt` right after the checkpoint at ``step`` of ``stage`` (``step=None``: at the stage start).

    ``trainer_ref`` is a one-element list filled with the trainer after construction.
    """

    def __init__(self, trainer_ref: list, stage: int, step: int | None = None):
        self.trainer_ref, self.stage, self.step = trainer_ref, stage, step

    def on_train_begin(self, args, state, control, **kw):
        if self.step is None and self.trainer_ref[0]._stage_index == self.stage:
            raise Interrupt

    def on_save(self, args, state, control, **kw):
        if self.trainer_ref[0]._stage_index == self.stage and state.global_step == self.step:
            raise Interrupt


def assert_same_parameters(a, b) -> None:
    """Bitwise equality of two models' parameters."""
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    for name in pa:
        assert torch.equal(pa[name], pb[name]), name


class FakeClock(TrainerCallback):
    """A clock that advances ``step_seconds`` per training step (``first_step_seconds`` for the first one) and
    ``save_seconds`` per checkpoint save; add it as a callback and pass it as the stage clock."""

    def __init__(self, step_seconds=1.0, first_step_seconds=None, save_seconds=0.0):
        self.now, self.steps = 0.0, 0
        self.step_seconds, self.save_seconds = step_seconds, save_seconds
        self.first_step_seconds = step_seconds if first_step_seconds is None else first_step_seconds
        self.lrs = []

    def __call__(self):
        return self.now

    def on_step_begin(self, args, state, control, **kw):
        self.now += self.first_step_seconds if self.steps == 0 else self.step_seconds
        self.steps += 1
        self.lrs.append(kw["lr_scheduler"].get_last_lr()[0])  # the rate this step uses

    def on_save(self, args, state, control, **kw):
        self.now += self.save_seconds  # inside the trainer's pause: not training time
