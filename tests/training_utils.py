"""Shared helpers for the staged-training tests: a tiny tagging model, a toy dataset and training arguments."""

from __future__ import annotations

import torch

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
