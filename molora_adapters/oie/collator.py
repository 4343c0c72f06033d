"""Batch padding for OIE training examples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .labels import IGNORE_INDEX

_PAD_VALUES = {
    "attention_mask": 0,
    "predicate_mask": 0,
    "predicate_labels": IGNORE_INDEX,
    "argument_labels": IGNORE_INDEX,
}


@dataclass
class DataCollatorForOIE:
    """Pad OIE examples (see :mod:`molora_adapters.oie.features`) to the longest in the batch.

    Columns other than the model inputs (e.g. ``record_id``) are dropped. A ``language`` column becomes the
    ``language_ids`` forward argument (a list of language codes) used by language-routed or language-supervised
    mixtures; models without a mixture ignore it.

    Args:
        pad_token_id (`int`): the tokenizer's padding id.
        pad_to_multiple_of (`int`, *optional*): round the padded length up to a multiple of this.
        language_ids (`bool`, *optional*, defaults to `True`): pass the ``language`` column on as ``language_ids``.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    language_ids: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.pad_token_id, int):
            raise ValueError(
                f"`pad_token_id` must be an int, got {self.pad_token_id!r}; use `tokenizer.pad_token_id`."
            )
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise ValueError(f"`pad_to_multiple_of` must be >= 1, got {self.pad_to_multiple_of}.")

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor | list[str]]:
        length = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch: dict[str, torch.Tensor | list[str]] = {}
        for key in ("input_ids", *_PAD_VALUES):
            if key not in features[0]:
                continue
            pad = self.pad_token_id if key == "input_ids" else _PAD_VALUES[key]
            rows = [list(f[key]) + [pad] * (length - len(f[key])) for f in features]
            batch[key] = torch.tensor(rows, dtype=torch.long)
        if self.language_ids and all(f.get("language") for f in features):
            batch["language_ids"] = [f["language"] for f in features]
        return batch
