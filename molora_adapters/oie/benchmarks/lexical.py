"""OIE2016 / Re-OIE2016 lexical match, as scored by the SpanOIE / Multi2OIE evaluation script.

Reimplemented from the behaviour of ``evaluate/evaluate.py`` in youngbin-ro/Multi2OIE (itself from
zhanjunlang/Span_OIE); no code was copied. Semantics kept on purpose ("official:" comments):

- a tuple is the bag of words of ``relation + args`` split on single spaces; a gold tuple matches a
  prediction when the number of equal (gold word, predicted word) *pairs* exceeds half its gold words;
- each gold tuple takes the first not-yet-matched prediction of its sentence;
- a gold sentence without predictions adds ``n * n`` (not ``n``) to both the gold total and the unmatched
  count, which scales every recall by ``matched / total``;
- the PR curve is scikit-learn's ``precision_recall_curve`` over (match, confidence) pairs, its recall
  multiplied as above; F1 is the first best point, AUC the trapezoid area of the whole curve.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ...utils.io import open_text
from ..formats.readers import iter_lines
from ..formats.rows import ExtractionRow
from .carb import f1 as _f1
from .carb import group_sentences, trapezoid_auc

LEXICAL_THRESHOLD = 0.5


def read_reoie2016_gold(path: str | os.PathLike) -> list[ExtractionRow]:
    """Re-OIE2016 JSON gold as the official relabelling reader sees it: ``<be>`` relations become
    ``[is]``, a leading ``<be> `` is dropped, non-empty ``arg0, arg1, arg2, arg3, temp, loc`` are the args.

    Args:
        path (`str` or `os.PathLike`): ``Re-OIE2016*.json`` (``.gz`` accepted).
    """
    with open_text(path, newline="") as f:
        data = json.load(f)
    rows = []
    for sentence, tuples in data.items():
        for k, t in enumerate(tuples):
            where = f"{os.fspath(path)}:{sentence[:40]!r}[{k}]"
            try:
                pred = t["pred"]
                rel = "[is]" if pred.strip() == "<be>" else pred.replace("<be> ", "")
                args = tuple(t[a] for a in ("arg0", "arg1", "arg2", "arg3", "temp", "loc") if t[a] != "")
            except KeyError as e:
                raise ValueError(f"{where}: missing key {e}.") from None
            rows.append(ExtractionRow(sentence, rel, args, 1.0, None, where))
    return rows


def read_oie2016_gold(path: str | os.PathLike) -> list[ExtractionRow]:
    """OIE2016 tab gold (``sentence, head, predicate phrase, arg0, ...``) as the official ``GoldReader``
    sees it: the *head word* is the relation and the predicate phrase is the first "argument".

    Args:
        path (`str` or `os.PathLike`): ``OIE2016_{dev,test}.txt``.
    """
    rows = []
    for n, line in iter_lines(path):
        if not line.strip():
            continue  # (the official readers crash on blank lines)
        where = f"{os.fspath(path)}:{n}"
        data = line.strip().split("\t")
        if len(data) < 2:
            raise ValueError(f"{where}: expected `sentence<TAB>head<TAB>...`, got {len(data)} field(s).")
        rows.append(ExtractionRow(data[0].strip(), data[1].strip(), tuple(data[2:]), 1.0, None, where))
    return rows


def _bow(row: ExtractionRow) -> list[str]:
    return " ".join([row.relation, *row.args]).split(" ")


def lexical_match(gold: Sequence[str], pred: Sequence[str]) -> bool:
    """official: equal (gold, predicted) word pairs over the gold length, strictly above 0.5."""
    cp = Counter(pred)
    count = sum(cp[w] for w in gold)
    return count / len(gold) > LEXICAL_THRESHOLD


def precision_recall_curve(y_true: np.ndarray, y_score: np.ndarray):
    """scikit-learn's ``precision_recall_curve`` (pre-1.1 truncation at full recall, which changes neither
    the AUC nor the best F1): precision and recall from the lowest kept threshold up, then ``(1, 0)``."""
    order = np.argsort(y_score, kind="mergesort")[::-1]
    y_score = y_score[order]
    y_true = y_true[order]
    distinct = np.where(np.diff(y_score))[0]
    idx = np.r_[distinct, y_true.size - 1]
    tps = np.cumsum(y_true, dtype=np.float64)[idx]
    fps = 1 + idx - tps
    thresholds = y_score[idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tps / (tps + fps)
    precision[np.isnan(precision)] = 0
    recall = tps / tps[-1]
    last = int(tps.searchsorted(tps[-1]))
    sl = slice(last, None, -1)
    return np.r_[precision[sl], 1], np.r_[recall[sl], 0], thresholds[sl]


def lexical_score(
    gold_rows: Sequence[ExtractionRow], pred_rows: Sequence[ExtractionRow], *, merge_duplicates: bool = False
) -> dict:
    """Score predictions with the SpanOIE / Multi2OIE lexical matcher.

    Args:
        gold_rows (`Sequence[ExtractionRow]`): gold tuples (see :func:`read_reoie2016_gold`).
        pred_rows (`Sequence[ExtractionRow]`): predictions; rows without arguments are skipped, as the
            official reader skips lines with fewer than four fields.
        merge_duplicates (`bool`, *optional*, defaults to `False`): merge sentence groups sharing a key
            instead of the official replacement.
    """
    skipped = sum(1 for r in pred_rows if not r.args)
    pred_rows = [r for r in pred_rows if r.args]
    gold, _ = group_sentences(gold_rows, strip=False, merge_duplicates=merge_duplicates)
    pred, _ = group_sentences(pred_rows, strip=False, merge_duplicates=merge_duplicates)
    y_true: list[int] = []
    y_score: list[float] = []
    total = unmatched = 0
    for key, g_rows in gold.items():
        p_rows = pred.get(key)
        if p_rows is None:
            total += len(g_rows) ** 2  # official: added once per gold tuple
            unmatched += len(g_rows) ** 2
            continue
        p_bows = [_bow(r) for r in p_rows]
        used = [False] * len(p_rows)
        for g in g_rows:
            total += 1
            g_bow = _bow(g)
            for j, pb in enumerate(p_bows):
                if not used[j] and lexical_match(g_bow, pb):
                    used[j] = True
                    y_true.append(1)
                    y_score.append(p_rows[j].confidence)
                    break
            else:
                unmatched += 1
        for j, r in enumerate(p_rows):
            if not used[j]:
                y_true.append(0)
                y_score.append(r.confidence)
    stats = {
        "gold_tuples_counted": total,
        "matched_gold": total - unmatched,
        "predictions": len(pred_rows),
        "skipped_predictions_without_args": skipped,
        "unknown_sentences": sum(1 for k in pred if k not in gold),
        "unknown_predictions": sum(len(v) for k, v in pred.items() if k not in gold),
    }
    yt = np.asarray(y_true, dtype=np.float64)
    ys = np.asarray([s if math.isfinite(s) else 0.0 for s in y_score], dtype=np.float64)
    if yt.size == 0 or yt.sum() == 0:
        return {
            "precision": 0.0,
            "recall": 0.0,
            "f1": 0.0,
            "auc": 0.0,
            "curve": {"precision": [], "recall": [], "thresholds": []},
            **stats,
        }
    precision, recall, thresholds = precision_recall_curve(yt, ys)
    recall = recall * ((total - unmatched) / float(total))
    best = max(
        (
            (p, r, _f1(p, r), t)
            for p, r, t in zip(
                precision[:-1].tolist(), recall[:-1].tolist(), thresholds.tolist(), strict=False
            )
        ),
        key=lambda x: x[2],
    )
    return {
        "precision": best[0],
        "recall": best[1],
        "f1": best[2],
        "auc": trapezoid_auc(recall, precision),
        "best_threshold": best[3],
        "curve": {
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "thresholds": thresholds.tolist(),
        },
        **stats,
    }
