"""CaRB (Bhardwaj et al., EMNLP 2019): binary lenient tuple match and the official PR curve.

Reimplemented from the paper and the observable behaviour of the official tool (dair-iitd/CaRB,
``carb.py`` + ``matcher.py``); no code was copied. Every quirk that changes numbers is kept on purpose
and commented with "official:".

Cost: matching is per sentence (gold x predicted of that sentence), the curve is accumulated with
difference arrays over the global thresholds, so scoring is linear in the number of sentences and
predictions (the official tool recomputes every sentence for every threshold index range).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..formats.rows import ExtractionRow, normalize_key

BE_FORMS = ("be", "is", "am", "are", "was", "were", "been", "being")
# official: substring test on the raw gold relation ("unsaid" counts as "said").
SAID_VERBS = ("said", "told", "added", "adds", "says")


def _bag(words: list[str]) -> dict[str, int]:
    bag: dict[str, int] = {}
    for w in words:
        bag[w] = bag.get(w, 0) + 1
    return bag


class _Prepared:
    """Word multisets of one tuple with arguments 2.. folded into one object."""

    __slots__ = ("rel", "rel_n", "args", "args_n", "rev_args", "rev_args_n", "said")

    def __init__(self, relation: str, args: Sequence[str]) -> None:
        rel_words = relation.split()
        self.rel = _bag(rel_words)
        self.rel_n = len(rel_words)
        if len(args) >= 2:
            folded = [args[0].split(), " ".join(args[1:]).split()]
        else:
            folded = [a.split() for a in args]
        self.args = [_bag(w) for w in folded]
        self.args_n = [len(w) for w in folded]
        # official: said-type gold relations also try the predicted subject and object swapped
        self.rev_args = self.args[::-1] if len(args) >= 2 else None
        self.rev_args_n = self.args_n[::-1] if len(args) >= 2 else None
        self.said = any(v in relation for v in SAID_VERBS)


@lru_cache(maxsize=1 << 15)
def _prepare(relation: str, args: tuple[str, ...]) -> _Prepared:
    """Cached: gold tuples are prepared once across repeated evaluations (training loops)."""
    return _Prepared(relation, args)


def _overlap(a: dict[str, int], b: dict[str, int]) -> int:
    if len(a) > len(b):
        a, b = b, a
    n = 0
    for w, c in a.items():
        d = b.get(w)
        if d:
            n += c if c < d else d
    return n


def _lenient(
    gold: _Prepared,
    pred_rel: dict[str, int],
    pred_rel_n: int,
    pred_args: list[dict[str, int]],
    pred_args_n: list[int],
) -> tuple[float, float]:
    matched = _overlap(gold.rel, pred_rel)
    # official: one leftover predicted "be" matches any form of "be" in the gold relation
    if pred_rel.get("be", 0) > gold.rel.get("be", 0) and any(f in gold.rel for f in BE_FORMS):
        matched += 1
    if matched == 0:
        return (0.0, 0.0)
    p_num = r_num = matched
    p_den, r_den = pred_rel_n, gold.rel_n
    for i, g in enumerate(gold.args):
        r_den += gold.args_n[i]
        if i >= len(pred_args):
            if i < 2:
                return (0.0, 0.0)
            continue
        p_den += pred_args_n[i]
        m = _overlap(g, pred_args[i])
        p_num += m
        r_num += m
    return (p_num / p_den if p_den else 0.0, r_num / r_den if r_den else 0.0)


def carb_match(gold: _Prepared, pred: _Prepared) -> tuple[float, float]:
    """``(precision, recall)`` of one predicted tuple against one gold tuple (binary lenient match)."""
    straight = _lenient(gold, pred.rel, pred.rel_n, pred.args, pred.args_n)
    if not gold.said or pred.rev_args is None:
        return straight
    reverse = _lenient(gold, pred.rel, pred.rel_n, pred.rev_args, pred.rev_args_n)
    return max(straight, reverse)  # official: tuple comparison, precision first


def match_tuples(
    gold_relation: str, gold_args: Sequence[str], relation: str, args: Sequence[str]
) -> tuple[float, float]:
    """Convenience wrapper of :func:`carb_match` on raw strings.

    Args:
        gold_relation (`str`): gold relation.
        gold_args (`Sequence[str]`): gold ``(arg0, arg1, ...)``.
        relation (`str`): predicted relation.
        args (`Sequence[str]`): predicted ``(arg0, arg1, ...)``.
    """
    return carb_match(_Prepared(gold_relation, gold_args), _Prepared(relation, args))


def group_sentences(
    rows: Sequence[ExtractionRow], *, strip: bool, merge_duplicates: bool = False
) -> tuple[dict[str, list[ExtractionRow]], int]:
    """Group rows by sentence string, then re-key by :func:`normalize_key`.

    official: when two different sentence strings share a key the later group *replaces* the earlier
    one (the key keeps its first position). ``merge_duplicates=True`` concatenates them instead.

    Returns:
        ``(groups, n_replaced_rows)``: the groups and how many rows were dropped by replacement.
    """
    raw: dict[str, list[ExtractionRow]] = {}
    for r in rows:
        raw.setdefault(r.sentence.strip() if strip else r.sentence, []).append(r)
    out: dict[str, list[ExtractionRow]] = {}
    dropped = 0
    for sentence, group in raw.items():
        key = normalize_key(sentence)
        if key in out:
            if merge_duplicates:
                out[key] = out[key] + group
                continue
            dropped += len(out[key])
        out[key] = group
    return out, dropped


@dataclass
class CurveResult:
    """PR curve and summary of one CaRB-style evaluation (thresholds ascending)."""

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    best_index: int | None
    auc: float
    stats: dict = field(default_factory=dict)
    official_best_index: int | None = None
    kept: np.ndarray | None = None  # predictions kept (on gold sentences) per threshold

    @property
    def official_best(self) -> tuple[float, float, float]:
        """The point the official tool prints: its F1 is NaN where P = R = 0, and ``np.argmax`` returns the
        first NaN, so any such threshold wins (reported F1 NaN). :attr:`best` skips that quirk."""
        if self.official_best_index is None:
            return (0.0, 0.0, 0.0)
        p, r = float(self.precision[self.official_best_index]), float(self.recall[self.official_best_index])
        return (p, r, float("nan") if p + r == 0 else f1(p, r))

    @property
    def best(self) -> tuple[float, float, float]:
        if self.best_index is None:
            return (0.0, 0.0, 0.0)
        p, r = float(self.precision[self.best_index]), float(self.recall[self.best_index])
        return p, r, f1(p, r)


def f1(p: float, r: float) -> float:
    """Harmonic mean; 0 when ``p + r == 0`` (the official tool yields NaN there, see the docs)."""
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def trapezoid_auc(recall: Sequence[float], precision: Sequence[float]) -> float:
    """Absolute trapezoid area under ``precision(recall)`` (as ``sklearn.metrics.auc`` on monotone x)."""
    x = np.asarray(recall, dtype=np.float64)
    y = np.asarray(precision, dtype=np.float64)
    if x.size < 2:
        return 0.0
    return float(abs((np.diff(x) * (y[1:] + y[:-1]) / 2.0).sum()))


def _sentence_levels(scores: list[list[tuple[float, float]]], confs: list[float]):
    """Per distinct confidence of one sentence, highest first: ``(conf, precision numerator, recall
    numerator, number kept)``. ``scores[i][j]`` is ``(precision, recall)`` of gold ``i`` vs prediction ``j``.

    Plain Python on purpose: sentences have a handful of tuples, where numpy's per-call overhead dominates.
    """
    n_gold, n_pred = len(scores), len(confs)
    order = sorted(range(n_pred), key=lambda j: -confs[j])  # stable: ties keep file order
    rank = [0] * n_pred
    for pos, j in enumerate(order):
        rank[j] = pos
    # greedy one-to-one matching by precision; ties -> lowest gold row, then lowest prediction index
    # (scanning pairs in this order and taking free ones equals the official repeated global argmax)
    pairs = sorted(
        (-scores[i][j][0], i, j) for i in range(n_gold) for j in range(n_pred) if scores[i][j][0] > 0
    )
    best_r = [0.0] * n_gold
    levels = []
    pos = 0
    while pos < n_pred:
        conf = confs[order[pos]]
        while pos < n_pred and confs[order[pos]] == conf:
            j = order[pos]
            for i in range(n_gold):
                if scores[i][j][1] > best_r[i]:
                    best_r[i] = scores[i][j][1]
            pos += 1
        used_g: set[int] = set()
        used_p: set[int] = set()
        p_num = 0.0
        for neg, i, j in pairs:
            if rank[j] >= pos or i in used_g or j in used_p:
                continue
            used_g.add(i)
            used_p.add(j)
            p_num += -neg
            if len(used_g) == n_gold:
                break
        r_num = 0.0
        for i in range(n_gold):
            r_num += best_r[i]
        levels.append((conf, p_num, r_num, pos))
    return levels


def carb_curve(
    gold_rows: Sequence[ExtractionRow],
    pred_rows: Sequence[ExtractionRow],
    *,
    merge_duplicates: bool = False,
    exact_order: bool = False,
) -> CurveResult:
    """Score predictions against CaRB gold with the official semantics.

    Args:
        gold_rows (`Sequence[ExtractionRow]`): gold tuples (context args already removed).
        pred_rows (`Sequence[ExtractionRow]`): predicted tuples in file order.
        merge_duplicates (`bool`, *optional*, defaults to `False`): merge groups whose sentences share a
            normalised key instead of letting the later one replace the earlier (official behaviour).
        exact_order (`bool`, *optional*, defaults to `False`): add every sentence's contribution to every
            threshold index in the official order, so each curve point is bit-identical to the official
            tool (cost O(sentences x thresholds)). The default difference-array accumulation is linear and
            differs only by float rounding (about 1e-13).
    """
    gold, gold_dropped = group_sentences(gold_rows, strip=True, merge_duplicates=merge_duplicates)
    pred, pred_dropped = group_sentences(pred_rows, strip=False, merge_duplicates=merge_duplicates)
    # official: thresholds are all distinct confidences of the (re-keyed) predictions, gold or not
    thresholds = np.array(sorted({r.confidence for g in pred.values() for r in g}), dtype=np.float64)
    threshold_list = thresholds.tolist()
    n_t = thresholds.size
    d_p = np.zeros(n_t + 1)
    d_pl = np.zeros(n_t + 1)
    d_r = np.zeros(n_t + 1)
    e_p, e_pl, e_r = np.zeros(n_t), np.zeros(n_t), np.zeros(n_t)
    n_gold_total = 0
    matched_sentences = 0
    for key, g_rows in gold.items():
        n_gold_total += len(g_rows)
        p_rows = pred.get(key)
        if not p_rows:
            continue
        matched_sentences += 1
        gp = [_prepare(r.relation, tuple(r.args)) for r in g_rows]
        pp = [_Prepared(r.relation, r.args) for r in p_rows]
        scores = [[carb_match(g, p) for p in pp] for g in gp]
        prev = 0
        # ascending confidence: the kept set for global threshold indices (prev, idx(conf)] is {>= conf}
        for conf, p_num, r_num, k in reversed(_sentence_levels(scores, [r.confidence for r in p_rows])):
            c = bisect_left(threshold_list, conf)
            if exact_order:
                e_p[prev : c + 1] += p_num
                e_pl[prev : c + 1] += k
                e_r[prev : c + 1] += r_num
                prev = c + 1
                continue
            d_p[prev] += p_num
            d_p[c + 1] -= p_num
            d_pl[prev] += k
            d_pl[c + 1] -= k
            d_r[prev] += r_num
            d_r[c + 1] -= r_num
            prev = c + 1
    if exact_order:
        p_sum, pl, r_sum = e_p, e_pl, e_r
    else:
        p_sum = np.cumsum(d_p)[:n_t]
        pl = np.rint(np.cumsum(d_pl)[:n_t])
        r_sum = np.cumsum(d_r)[:n_t]
    precision = np.where(pl > 0, p_sum / np.where(pl > 0, pl, 1), 1.0)
    recall = r_sum / n_gold_total if n_gold_total else np.zeros(n_t)
    if n_t:
        f1s = np.array([f1(p, r) for p, r in zip(precision.tolist(), recall.tolist(), strict=False)])
        best = int(np.argmax(f1s))  # official: first of tied maxima
        zero = np.nonzero(precision + recall == 0)[0]
        official_best = int(zero[0]) if zero.size else best
        auc = trapezoid_auc(np.r_[recall, 0.0], np.r_[precision, 1.0])
    else:
        best, official_best, auc = None, None, 0.0
    n_pred_in_gold = sum(len(pred[k]) for k in pred if k in gold)
    stats = {
        "gold_sentences": len(gold),
        "gold_tuples": n_gold_total,
        "predicted_sentences": len(pred),
        "predictions": sum(len(v) for v in pred.values()),
        "matched_sentences": matched_sentences,
        "unknown_sentences": sum(1 for k in pred if k not in gold),
        "unknown_predictions": sum(len(v) for v in pred.values()) - n_pred_in_gold,
        "replaced_gold_tuples": gold_dropped,
        "replaced_predictions": pred_dropped,
    }
    return CurveResult(thresholds, precision, recall, best, auc, stats, official_best, pl)


def format_pr_dat(
    precision: Sequence[float],
    recall: Sequence[float],
    thresholds: Sequence[float],
    kept: Sequence[float] | None = None,
    n_gold: int | None = None,
) -> str:
    """The official scorer's PR-curve file (``--out``): ``Precision<TAB>Recall<TAB>Confidence`` rows
    stably sorted by recall, numbers written as Python prints them (``1`` / ``0`` where the official tool
    falls back to the integer: nothing kept / no gold).

    Args:
        precision, recall, thresholds: the curve in ascending-threshold order.
        kept (`Sequence[float]`, *optional*): predictions kept per threshold (to print the integer ``1``).
        n_gold (`int`, *optional*): number of gold tuples (to print the integer ``0`` recall when 0).
    """
    rows = []
    for k, (p, r, t) in enumerate(zip(precision, recall, thresholds, strict=True)):
        p_out = 1 if kept is not None and kept[k] == 0 else float(p)
        r_out = 0 if n_gold == 0 else float(r)
        rows.append((p_out, r_out, float(t)))
    rows.sort(key=lambda x: x[1])
    return "Precision\tRecall\tConfidence\n" + "".join(f"{p}\t{r}\t{t}\n" for p, r, t in rows)
