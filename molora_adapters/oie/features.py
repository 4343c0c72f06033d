"""OIE records -> tokenised training features, one row per sentence (default) or per (sentence, predicate).

With ``layout="sentence"`` (the default) every row is one sentence, encoded once, with all its predicates:

* ``predicate_labels``: the predicate tags of *all* predicates of the sentence (the predicate tagger's target);
* ``predicate_masks``: one list per predicate, 1 on every sub-word of that predicate;
* ``argument_labels``: one list per predicate, the argument tags of that predicate's tuple;
* ``length``: the number of sub-words (for length-grouped batching, ``TrainingArguments(group_by_length=True)``).

:class:`~molora_adapters.oie.DataCollatorForOIE` flattens the predicates of a batch into argument-tagger rows with
``predicate_rows`` pointing at their sentence, and the head runs the encoder once per sentence and the argument
tagger once per predicate, as :class:`~molora_adapters.oie.OIEPipeline` does at inference. The older
``layout="predicate"`` gives one row per (sentence, predicate) with a single ``predicate_mask`` / ``argument_labels``
and re-encodes a sentence once per predicate (2.1x the encoder work on the shipped corpora).

Sentences are tokenised by :func:`~molora_adapters.data.tokenization.tokenize_words` (scripts without spaces
as unspaced text). Word tags go on the first sub-word of each word; continuation pieces, special tokens and padding get
:data:`~molora_adapters.oie.labels.IGNORE_INDEX` so they are not scored. Tuples whose predicate span
repeats an earlier tuple's are skipped (one argument target per predicate) and sentences longer than
``max_length`` sub-words are skipped for training; both are counted in :class:`FeatureStats`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import datasets
from transformers import PreTrainedTokenizerBase

from ..data.tokenization import encode_words, tokenize_words  # noqa: F401  (encode_words: re-exported)
from .labels import ARG_LABEL2ID, IGNORE_INDEX, PRED_LABEL2ID, argument_tags, predicate_tags

logger = logging.getLogger(__name__)

FEATURE_COLUMNS = ("input_ids", "attention_mask", "predicate_mask", "predicate_labels", "argument_labels")
"""Model-input columns of ``layout="predicate"`` features."""
SENTENCE_FEATURE_COLUMNS = (
    "input_ids",
    "attention_mask",
    "predicate_masks",
    "predicate_labels",
    "argument_labels",
)
"""Model-input columns of ``layout="sentence"`` features (``predicate_masks`` / ``argument_labels``: one list per
predicate)."""
FeatureLayout = Literal["sentence", "predicate"]


@dataclass
class FeatureStats:
    """Counts of what :func:`build_oie_features` kept and skipped.

    ``examples`` counts (sentence, predicate) training examples in either layout; ``rows`` counts dataset rows
    (sentences with ``layout="sentence"``).
    """

    sentences: int = 0
    examples: int = 0
    rows: int = 0
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) or "none"
        return (
            f"{self.sentences} sentences -> {self.examples} examples in {self.rows} rows; skipped: {skipped}"
        )


def word_labels_to_subwords(
    tags: Sequence[str], word_ids: Sequence[int | None], label2id: dict[str, int]
) -> list[int]:
    """Put word tags on the first sub-word of each word; everything else gets ``IGNORE_INDEX``."""
    out, prev = [], None
    for w in word_ids:
        out.append(label2id[tags[w]] if w is not None and w != prev else IGNORE_INDEX)
        prev = w if w is not None else prev
    return out


def word_mask_to_subwords(positions: Sequence[int], word_ids: Sequence[int | None]) -> list[int]:
    """1 on every sub-word of the words in ``positions``."""
    pos = set(positions)
    return [int(w is not None and w in pos) for w in word_ids]


def build_oie_features(
    dataset: datasets.Dataset | Sequence[dict[str, Any]],
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_length: int | None = None,
    stats: FeatureStats | None = None,
    layout: FeatureLayout = "sentence",
) -> datasets.Dataset:
    """Turn OIE records into training examples (see module docstring).

    Args:
        dataset (`datasets.Dataset` or list of record dicts): records in ``OIE_FEATURES``.
        tokenizer (`PreTrainedTokenizerBase`): fast tokenizer of the encoder.
        max_length (`int`, *optional*): longest example in sub-words; defaults to the tokenizer's
            ``model_max_length`` (capped at 512). Longer sentences are skipped, never truncated.
        stats (`FeatureStats`, *optional*): receives counts.
        layout (`str`, *optional*, defaults to `"sentence"`): ``"sentence"`` (one row per sentence, all its
            predicates; the encoder runs once per sentence) or ``"predicate"`` (one row per predicate).

    Returns:
        `datasets.Dataset` with columns :data:`SENTENCE_FEATURE_COLUMNS` (or :data:`FEATURE_COLUMNS` for
        ``layout="predicate"``) plus ``length``, ``record_id`` and ``language`` (the record's language code, which
        :class:`~molora_adapters.oie.DataCollatorForOIE` passes on as ``language_ids`` for language-routed or
        language-supervised mixtures).
    """
    if layout not in ("sentence", "predicate"):
        raise ValueError(f"`layout` must be 'sentence' or 'predicate', got {layout!r}.")
    stats = stats if stats is not None else FeatureStats()
    if max_length is None:
        max_length = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
    records = list(dataset)
    enc = tokenize_words(  # unspaced scripts (zh, ja, th ...) are tokenised without spaces
        tokenizer,
        [r["words"] for r in records],
        languages=[r.get("language") for r in records],
        sentences=[r.get("sentence") for r in records],
    )
    ids, word_ids = enc.input_ids, enc.word_ids
    per_sentence = layout == "sentence"
    columns = SENTENCE_FEATURE_COLUMNS if per_sentence else FEATURE_COLUMNS
    cols: dict[str, list] = {k: [] for k in (*columns, "length", "record_id", "language")}
    for rec, input_ids, wids in zip(records, ids, word_ids, strict=True):
        stats.sentences += 1
        exts = _extractions(rec)
        if not exts:
            stats.skipped["no_extractions"] += 1
            continue
        if len(input_ids) > max_length:
            stats.skipped["too_long"] += 1
            continue
        n = len(rec["words"])
        seen, tuples = set(), []
        for ex in exts:
            key = tuple(sorted(ex["relation_pos"]))
            if not key:
                stats.skipped["no_relation_positions"] += 1
            elif key in seen:
                stats.skipped["duplicate_predicate"] += 1
            else:
                seen.add(key)
                tuples.append(ex)
        if not tuples:
            continue
        pred = word_labels_to_subwords(
            predicate_tags([t["relation_pos"] for t in tuples], n), wids, PRED_LABEL2ID
        )
        masks, arg_labels = [], []
        for ex in tuples:
            try:
                arg_tags = argument_tags(ex["arg0_pos"], ex["args_pos"], n)
            except ValueError:
                stats.skipped["invalid_arguments"] += 1
                continue
            masks.append(word_mask_to_subwords(ex["relation_pos"], wids))
            arg_labels.append(word_labels_to_subwords(arg_tags, wids, ARG_LABEL2ID))
        stats.examples += len(masks)
        rows = [(masks, arg_labels)] if per_sentence and masks else list(zip(masks, arg_labels, strict=True))
        for mask, labels in rows:
            cols["input_ids"].append(list(input_ids))
            cols["attention_mask"].append([1] * len(input_ids))
            cols["predicate_masks" if per_sentence else "predicate_mask"].append(mask)
            cols["predicate_labels"].append(pred)
            cols["argument_labels"].append(labels)
            cols["length"].append(len(input_ids))
            cols["record_id"].append(rec["id"])
            cols["language"].append(rec.get("language") or "")
            stats.rows += 1
    logger.info("OIE features: %s", stats.summary())
    return datasets.Dataset.from_dict(cols)


def _extractions(rec: dict[str, Any]) -> list[dict[str, Any]]:
    exts = rec.get("extractions") or []
    if isinstance(exts, dict):  # column-oriented (datasets may return a dict of lists)
        keys = list(exts)
        exts = [dict(zip(keys, vals, strict=True)) for vals in zip(*(exts[k] for k in keys), strict=True)]
    return exts
