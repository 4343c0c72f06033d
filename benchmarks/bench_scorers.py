"""Timing of the benchmark scorers against the naive per-threshold recomputation.

Run from the repository root::

    python benchmarks/bench_scorers.py [--out benchmarks/results/bench_scorers.json] [--quick]

Cases:
- CaRB en test with OpenIE-4's output (tests/data/benchmarks), fast scorer (exact official float order
  and linear difference arrays) vs the naive per-threshold oracle (timed on a threshold subset and
  extrapolated, the full run takes tens of seconds).
- CaRB zh (4,721 sentences) with three synthetic systems (seeded perturbations of the gold), plus a
  scaling series over 25/50/100 % of the sentences.
- BenchIE en/de/zh with Multi2OIE's outputs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from molora_adapters.oie.benchmarks import read_benchie, read_openie4, score_extractions  # noqa: E402
from molora_adapters.oie.benchmarks._reference import reference_carb_curve  # noqa: E402
from molora_adapters.oie.benchmarks.api import score_benchie  # noqa: E402
from molora_adapters.oie.benchmarks.carb import carb_curve  # noqa: E402
from molora_adapters.oie.benchmarks.gold import gold_path, read_carb_gold  # noqa: E402
from molora_adapters.oie.formats.rows import ExtractionRow  # noqa: E402

TEST_DATA = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data", "benchmarks"
)


def _best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def synthetic_system(gold: list[ExtractionRow], seed: int, per_tuple: float = 2.0) -> list[ExtractionRow]:
    """Seeded noisy predictions: drop/keep words of gold tuples, random confidences, a few junk tuples."""
    rng = random.Random(seed)
    out = []
    for g in gold:
        for _ in range(int(per_tuple) + (rng.random() < per_tuple % 1)):

            def noisy(text: str) -> str:
                words = [w for w in text.split() if rng.random() > 0.25] or text.split()[:1]
                return " ".join(words)

            args = tuple(noisy(a) for a in g.args[:2]) or ("x",)
            rel = noisy(g.relation) if rng.random() > 0.1 else "是"
            out.append(ExtractionRow(g.sentence, rel, args, round(rng.random(), 4)))
    rng.shuffle(out)
    out.sort(key=lambda r: r.sentence)  # one group per sentence, as a system writes them
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/bench_scorers.json")
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args()
    repeat = 1 if args.quick else 3
    results: dict = {
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
        }
    }

    # --- CaRB en, OpenIE-4 ---------------------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "openie4.txt")
        with gzip.open(os.path.join(TEST_DATA, "openie4_output.txt.gz"), "rb") as f, open(path, "wb") as g:
            g.write(f.read())
        pred = read_openie4(path)
    gold = read_carb_gold(gold_path("carb", "en"))
    res = carb_curve(gold, pred)
    n_t = res.thresholds.size
    subset = range(0, n_t, 25)
    t_ref = _best_of(lambda: reference_carb_curve(gold, pred, thresholds_subset=subset), 1)
    en = {
        "gold_sentences": res.stats["gold_sentences"],
        "predictions": len(pred),
        "thresholds": n_t,
        "fast_exact_order_s": _best_of(lambda: carb_curve(gold, pred, exact_order=True), repeat),
        "fast_linear_s": _best_of(lambda: carb_curve(gold, pred, exact_order=False), repeat),
        "naive_subset_thresholds": len(subset),
        "naive_subset_s": t_ref,
        "naive_extrapolated_s": t_ref * n_t / len(subset),
    }
    en["speedup_vs_naive"] = en["naive_extrapolated_s"] / en["fast_exact_order_s"]
    results["carb_en_openie4"] = en

    # --- CaRB zh, synthetic systems ------------------------------------------------------------
    gold_zh = read_carb_gold(gold_path("carb", "zh"))
    systems = [synthetic_system(gold_zh, seed) for seed in (0, 1, 2)]
    zh: dict = {
        "gold_sentences": len({g.sentence for g in gold_zh}),
        "gold_tuples": len(gold_zh),
        "systems": [],
    }
    for k, sys_rows in enumerate(systems):
        r = carb_curve(gold_zh, sys_rows)
        entry = {
            "predictions": len(sys_rows),
            "thresholds": int(r.thresholds.size),
            "f1": r.best[2],
            "auc": r.auc,
            "fast_exact_order_s": _best_of(
                lambda s=sys_rows: carb_curve(gold_zh, s, exact_order=True), repeat
            ),
            "fast_linear_s": _best_of(lambda s=sys_rows: carb_curve(gold_zh, s, exact_order=False), repeat),
        }
        if k == 0:
            sub = range(0, int(r.thresholds.size), max(1, int(r.thresholds.size) // 10))
            t_ref = _best_of(
                lambda s=sys_rows, t=sub: reference_carb_curve(gold_zh, s, thresholds_subset=t), 1
            )
            entry["naive_subset_thresholds"] = len(sub)
            entry["naive_subset_s"] = t_ref
            entry["naive_extrapolated_s"] = t_ref * r.thresholds.size / len(sub)
        zh["systems"].append(entry)
    zh["three_systems_total_exact_order_s"] = sum(s["fast_exact_order_s"] for s in zh["systems"])
    zh["three_systems_total_linear_s"] = sum(s["fast_linear_s"] for s in zh["systems"])
    zh["in_memory_score_extractions_s"] = _best_of(
        lambda: score_extractions("carb", systems[0], lang="zh"), repeat
    )
    # scaling with the number of sentences
    sentences = sorted({g.sentence for g in gold_zh})
    scaling = []
    for frac in (0.25, 0.5, 1.0):
        keep = set(sentences[: int(len(sentences) * frac)])
        g_sub = [g for g in gold_zh if g.sentence in keep]
        p_sub = [p for p in systems[0] if p.sentence in keep]
        scaling.append(
            {
                "fraction": frac,
                "sentences": len(keep),
                "predictions": len(p_sub),
                "exact_order_s": _best_of(
                    lambda g=g_sub, p=p_sub: carb_curve(g, p, exact_order=True), repeat
                ),
                "linear_s": _best_of(lambda g=g_sub, p=p_sub: carb_curve(g, p, exact_order=False), repeat),
            }
        )
    zh["scaling"] = scaling
    results["carb_zh_synthetic"] = zh

    # --- BenchIE ---------------------------------------------------------------------------------
    bench = {}
    for lang in ("en", "de", "zh"):
        rows = read_benchie(os.path.join(TEST_DATA, f"m2oie_{lang}_explicit.txt"))
        score_benchie(rows, lang=lang)  # parse + cache the gold
        bench[lang] = {
            "predictions": len(rows),
            "score_s": _best_of(lambda r=rows, lg=lang: score_benchie(r, lang=lg), repeat),
        }
    results["benchie_m2oie"] = bench

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
