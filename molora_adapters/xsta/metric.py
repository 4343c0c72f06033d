"""SQuAD v1.1 exact match and F1, as the official ``evaluate-v1.1.py`` script computes them.

``evaluate.load("squad")`` fetches its script from the Hugging Face Hub, so it does not work offline; this module
implements the same scoring (answer normalisation: lower case, punctuation removed, the articles ``a``/``an``/``the``
removed, whitespace collapsed; token-level F1 on whitespace tokens; the maximum over the gold answers; both as
percentages). XQuAD is scored with this script for every language (XTREME does the same).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official script's ``normalize_answer``."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_exact_match(prediction: str, ground_truth: str) -> float:
    """1.0 if the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def squad_f1(prediction: str, ground_truth: str) -> float:
    """Token-level F1 of the normalised strings."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(ground_truth).split()
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_scores(
    predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], per_question: bool = False
) -> dict:
    """SQuAD v1.1 ``{"exact_match", "f1"}`` (percentages) of ``predictions`` (id -> text) against ``references``
    (id -> gold answer texts). A reference without a prediction scores 0, as in the official script.

    Args:
        predictions (`Mapping[str, str]`): predicted answer per question id.
        references (`Mapping[str, Sequence[str]]`): gold answers per question id (every id is scored).
        per_question (`bool`, *optional*, defaults to `False`): also return ``"per_question"``: id -> (em, f1) in
            [0, 1], for paired bootstrap confidence intervals.
    """
    if not references:
        raise ValueError("`references` is empty; nothing to score.")
    rows = {}
    for qid, golds in references.items():
        if isinstance(golds, str) or not golds:
            raise ValueError(
                f"`references[{qid!r}]` must be a non-empty list of answer texts, got {golds!r}."
            )
        pred = predictions.get(qid)
        if pred is None:
            rows[qid] = (0.0, 0.0)
            continue
        rows[qid] = (max(squad_exact_match(pred, g) for g in golds), max(squad_f1(pred, g) for g in golds))
    n = len(rows)
    out = {
        "exact_match": 100.0 * sum(r[0] for r in rows.values()) / n,
        "f1": 100.0 * sum(r[1] for r in rows.values()) / n,
    }
    if per_question:
        out["per_question"] = rows
    return out
