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

    Sentence-layout features (``predicate_masks``: one mask per predicate) are flattened: the batch holds one
    encoder row per sentence and one argument-tagger row per predicate, ``predicate_mask`` and
    ``argument_labels`` of shape ``(n_predicates, length)`` and ``predicate_rows`` (the sentence row of each
    predicate), which :class:`~molora_adapters.oie.OIEHead` uses to run the argument tagger on the sentence's
    encoder states. Predicate-layout features (one ``predicate_mask`` per row) are padded as they are.

    Columns other than the model inputs (e.g. ``record_id``, ``length``) are dropped. A ``language`` column becomes the
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
            if key == "argument_labels" and "predicate_masks" in features[0]:
                continue  # per predicate, below
            rows = [list(f[key]) + [pad] * (length - len(f[key])) for f in features]
            batch[key] = torch.tensor(rows, dtype=torch.long)
        if "predicate_masks" in features[0]:
            masks, labels, owners = [], [], []
            for row, f in enumerate(features):
                if len(f["predicate_masks"]) != len(f["argument_labels"]):
                    raise ValueError(
                        f"Feature {row} has {len(f['predicate_masks'])} `predicate_masks` but "
                        f"{len(f['argument_labels'])} `argument_labels` lists; build it with `build_oie_features`."
                    )
                for mask, arg in zip(f["predicate_masks"], f["argument_labels"], strict=True):
                    masks.append(list(mask) + [0] * (length - len(mask)))
                    labels.append(list(arg) + [IGNORE_INDEX] * (length - len(arg)))
                    owners.append(row)
            # (n_predicates, length) argument-tagger rows; predicate_rows: (n_predicates,) sentence row of each
            batch["predicate_mask"] = torch.tensor(masks, dtype=torch.long).view(len(masks), length)
            batch["argument_labels"] = torch.tensor(labels, dtype=torch.long).view(len(labels), length)
            batch["predicate_rows"] = torch.tensor(owners, dtype=torch.long)
        if self.language_ids and all(f.get("language") for f in features):
            batch["language_ids"] = [f["language"] for f in features]
        return batch
