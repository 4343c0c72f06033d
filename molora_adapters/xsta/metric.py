"""SQuAD v1.1 exact match and F1, as the official ``evaluate-v1.1.py`` script computes them.

``evaluate.load("squad")`` fetches its script from the Hugging Face Hub, so it does not work offline; this module
implements the same scoring (answer normalisation: lower case, punctuation removed, the articles ``a``/``an``/``the``
removed, whitespace collapsed; token-level F1 on whitespace tokens; the maximum over the gold answers; both as
percentages). XQuAD is scored with this script for every language (XTREME does the same).

:func:`hierarchical_bootstrap` gives intervals for scores of several training seeds on questions clustered in
paragraphs (seeds resampled, then paragraphs within each seed).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

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


def hierarchical_bootstrap(
    scores: np.ndarray, clusters: Sequence[Hashable], n_boot: int = 2000, seed: int = 0
) -> np.ndarray:
    """Bootstrap means of ``scores`` (seeds x questions), resampling seeds, then paragraphs within each seed.

    One replicate draws ``S`` seeds with replacement; for each drawn seed it draws the ``P`` paragraphs (clusters)
    with replacement and takes all their questions; the replicate is the mean over every question so drawn. Seed
    variance and the clustering of questions in paragraphs both widen the interval, unlike a bootstrap over
    questions.

    Args:
        scores (`np.ndarray` of shape `(S, Q)`): per seed and question, a score (or a paired difference).
        clusters (`Sequence`): the paragraph of each of the ``Q`` questions.
        n_boot (`int`, *optional*, defaults to 2000): replicates.
        seed (`int`, *optional*, defaults to 0): resampling seed.

    Returns:
        `np.ndarray` of shape `(n_boot,)`: the replicate means.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(clusters) or scores.size == 0:
        raise ValueError(
            f"`scores` must be (seeds, questions) with one cluster per question, got shape {scores.shape} "
            f"and {len(clusters)} clusters."
        )
    keys = sorted(set(clusters), key=str)
    index = {k: i for i, k in enumerate(keys)}
    col = np.array([index[c] for c in clusters])
    n_seeds, n_par = scores.shape[0], len(keys)
    sums = np.zeros((n_seeds, n_par))
    for s in range(n_seeds):
        np.add.at(sums[s], col, scores[s])
    counts = np.bincount(col, minlength=n_par).astype(np.float64)
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, (n_boot, n_seeds))  # (n_boot, S)
    paras = rng.integers(0, n_par, (n_boot, n_seeds, n_par))  # (n_boot, S, P)
    total = sums[seeds[:, :, None], paras].sum(axis=(1, 2))
    return total / counts[paras].sum(axis=(1, 2))


def ci95(replicates: np.ndarray, scale: float = 100.0) -> list[float]:
    """The percentile interval ``[2.5%, 97.5%]`` of bootstrap replicates, times ``scale``, rounded."""
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return [round(float(lo) * scale, 2), round(float(hi) * scale, 2)]
