"""Naive per-threshold CaRB curve, written straight from the specification.

For every global threshold it rebuilds every sentence's kept predictions, best recalls and greedy
precision matching from scratch. It is the oracle for tests of :func:`~.carb.carb_curve` and the
baseline of ``benchmarks/bench_scorers.py``; do not use it for real scoring (cost O(thresholds x
sentences x gold x predicted^2)).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..formats.rows import ExtractionRow
from .carb import _Prepared, carb_match, f1, group_sentences, trapezoid_auc


def reference_carb_curve(
    gold_rows: Sequence[ExtractionRow],
    pred_rows: Sequence[ExtractionRow],
    thresholds_subset: Sequence[int] | None = None,
):
    """Return ``(thresholds, precision, recall, (p, r, f1), auc)`` computed naively.

    Args:
        gold_rows / pred_rows: as for :func:`~.carb.carb_curve`.
        thresholds_subset (`Sequence[int]`, *optional*): only evaluate these threshold indices (timing).
    """
    gold, _ = group_sentences(gold_rows, strip=True)
    pred, _ = group_sentences(pred_rows, strip=False)
    thresholds = sorted({r.confidence for g in pred.values() for r in g})
    matrices = {}
    for key, g_rows in gold.items():
        p_rows = pred.get(key, [])
        gp = [_Prepared(r.relation, r.args) for r in g_rows]
        pp = [_Prepared(r.relation, r.args) for r in p_rows]
        matrices[key] = ([[carb_match(g, p) for p in pp] for g in gp], [r.confidence for r in p_rows])
    idx = range(len(thresholds)) if thresholds_subset is None else thresholds_subset
    precision, recall = [], []
    for t in idx:
        thr = thresholds[t]
        p_num = p_den = r_num = r_den = 0.0
        for scores, confs in matrices.values():
            kept = [j for j, c in enumerate(confs) if c >= thr]
            r_den += len(scores)
            if not kept:
                continue
            for row in scores:
                r_num += max(row[j][1] for j in kept)
            used_rows: list[int] = []
            used_cols: list[int] = []
            sent_p = 0.0
            for _ in range(min(len(scores), len(kept))):
                best, bi, bj = -1.0, -1, -1
                for i in range(len(scores)):
                    if i in used_rows:
                        continue
                    for j in kept:
                        if j not in used_cols and scores[i][j][0] > best:
                            best, bi, bj = scores[i][j][0], i, j
                used_rows.append(bi)
                used_cols.append(bj)
                sent_p += best
            p_num += sent_p
            p_den += len(kept)
        precision.append(p_num / p_den if p_den > 0 else 1.0)
        recall.append(r_num / r_den if r_den > 0 else 0.0)
    f1s = [f1(p, r) for p, r in zip(precision, recall, strict=False)]
    best = max(range(len(f1s)), key=lambda k: (f1s[k], -k)) if f1s else None
    point = (precision[best], recall[best], f1s[best]) if best is not None else (0.0, 0.0, 0.0)
    auc = trapezoid_auc(recall + [0.0], precision + [1.0]) if f1s else 0.0
    return [thresholds[t] for t in idx], precision, recall, point, auc
