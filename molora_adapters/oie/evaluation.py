"""The cross-lingual OIE evaluation protocol shared by the example, `molora train` and `benchmarks/quality_oie.py`.

Test sets are scored with the scorers that reproduce the official tools; es/pt use only the Re-OIE2016 sentences
that the leak-free few-shot training split does not take. ``dev:<lang>`` evaluations (CaRB en dev, and the slice
of the projected data a recipe holds out per language) are for choices; test sets are for reporting only.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# (benchmark, language, scorer, description)
EVALUATIONS: tuple[tuple[str, str, str, str], ...] = (
    ("carb", "en", "carb", "CaRB en test"),
    ("benchie", "en", "benchie", "BenchIE en"),
    ("benchie", "de", "benchie", "BenchIE de"),
    ("benchie", "zh", "benchie", "BenchIE zh"),
    ("carb", "es", "carb", "Re-OIE2016 es held-out (CaRB format)"),
    ("carb", "pt", "carb", "Re-OIE2016 pt held-out (CaRB format)"),
    ("reoie2016", "es", "reoie2016", "Re-OIE2016 es held-out (lexical)"),
    ("reoie2016", "pt", "reoie2016", "Re-OIE2016 pt held-out (lexical)"),
    ("carb", "zh", "carb", "multilingual CaRB zh"),
    ("carb", "hi", "carb", "multilingual CaRB hi"),
    ("carb", "te", "carb", "multilingual CaRB te"),
)
TEST_EVALUATIONS: tuple[str, ...] = tuple(f"{b}:{lang}" for b, lang, _, _ in EVALUATIONS)
DEV_EVALUATIONS: tuple[str, ...] = ("dev:en",)
"""``dev:en`` is CaRB en dev; a recipe with a projected dev slice adds ``dev:<lang>`` for its languages."""

ROUTING_SAMPLES = (
    ("carb", "en"),
    ("benchie", "de"),
    ("carb", "zh"),
    ("carb", "es"),
    ("carb", "pt"),
    ("carb", "hi"),
)


def evaluation_sets(
    names: Sequence[str],
    *,
    few_shot: dict[str, int],
    max_sentences: int = 0,
    seed: int = 42,
    dev_records: dict[str, list[dict]] | None = None,
) -> list[dict[str, Any]]:
    """Per evaluation: its sentences and the gold sentences to score on (``subset``, `None`: all).

    Args:
        names (`Sequence[str]`): ``benchmark:lang`` keys of `TEST_EVALUATIONS`, or ``dev:<lang>``.
        few_shot (`dict[str, int]`): the few-shot sentences per language that training takes from Re-OIE2016
            (excluded from its evaluation).
        max_sentences (`int`, *optional*, defaults to 0): sample larger sets to this size (BenchIE is never
            sampled); 0 keeps every sentence.
        seed (`int`, *optional*, defaults to 42): seed of the sample.
        dev_records (`dict[str, list[dict]]`, *optional*): held-out projected records per language (``dev:<lang>``
            for languages other than ``en``).
    """
    from .benchmarks import gold_path, leak_free_few_shot, load_benchmark

    held_out = {
        lang: {s.strip() for s in leak_free_few_shot(lang, n)["sentence"]} for lang, n in few_shot.items()
    }
    sets = []
    for name in names:
        bench, _, lang = name.partition(":")
        if bench == "dev":
            if lang == "en":
                sentences = list(
                    dict.fromkeys(s.strip() for s in load_benchmark("carb", "en", split="dev")["sentence"])
                )
                gold, what = str(gold_path("carb", "en", "dev")), "CaRB en dev"
            elif dev_records and lang in dev_records:
                sentences, gold, what = (
                    [r["sentence"].strip() for r in dev_records[lang]],
                    None,
                    f"projected {lang} dev",
                )
            else:
                raise ValueError(
                    f"`{name}`: no dev data for `{lang}` (dev sets: en and the projected dev slice)."
                )
            sets.append(
                dict(
                    name=name,
                    benchmark="dev",
                    lang=lang,
                    scorer="carb",
                    what=what,
                    sentences=sentences,
                    subset=None,
                    gold=gold,
                    records=(dev_records or {}).get(lang),
                )
            )
            continue
        match = [e for e in EVALUATIONS if f"{e[0]}:{e[1]}" == name]
        if not match:
            raise ValueError(
                f"Unknown evaluation `{name}`; choose from {', '.join(TEST_EVALUATIONS + DEV_EVALUATIONS)}."
            )
        _, _, scorer, what = match[0]
        sentences = [s.strip() for s in load_benchmark(bench, lang)["sentence"]]
        keep = None
        if lang in held_out and bench in ("carb", "reoie2016"):
            sentences = [s for s in sentences if s not in held_out[lang]]
            keep = set(sentences)
        if max_sentences and len(sentences) > max_sentences and bench != "benchie":
            sentences = sorted(random.Random(seed).sample(sentences, max_sentences), key=sentences.index)
            keep = set(sentences)
        sets.append(
            dict(
                name=name,
                benchmark=bench,
                lang=lang,
                scorer=scorer,
                what=what,
                sentences=sentences,
                subset=keep,
                gold=None,
                records=None,
            )
        )
    return sets


def evaluate(
    pipe,
    sets: Sequence[dict[str, Any]],
    predictions_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], dict[str, dict]]:
    """Extract and score every evaluation set with ``pipe`` (an `OIEPipeline`).

    Returns:
        ``(rows, curves)``: one row per set (``precision``, ``recall``, ``f1``, ``auc``, ``extractions`` and
        ``empty_sentences``, the sentences that got no tuple), and the PR curves by ``"scorer lang"``.
    """
    from .benchmarks import write_tabbed

    rows, curves, cache = [], {}, {}
    for ev in sets:
        key = (ev["lang"], tuple(ev["sentences"]))
        if key not in cache:  # CaRB and lexical scoring of es/pt share one extraction pass
            t0 = time.time()
            cache[key] = pipe.extract(ev["sentences"], language=ev["lang"], batch_size=32)
            log(f"  extracted {ev['what']}: {len(ev['sentences'])} sentences in {time.time() - t0:.0f}s")
        extractions = cache[key]
        preds = [(s, exts) for s, exts in zip(ev["sentences"], extractions, strict=True)]
        if predictions_dir is not None:  # CaRB format, for `molora evaluate`
            write_tabbed(Path(predictions_dir) / f"{ev['name'].replace(':', '_')}.tsv", preds)
        res = score_set(ev, preds)
        rows.append(
            {
                "benchmark": ev["what"],
                "key": ev["name"],
                "scorer": ev["scorer"],
                "lang": ev["lang"],
                "sentences": len(ev["sentences"]),
                "extractions": sum(len(e) for e in extractions),
                "empty_sentences": sum(1 for e in extractions if not e),
                **{k: res.get(k) for k in ("precision", "recall", "f1", "auc")},
            }
        )
        if res.get("curve"):
            curves[f"{ev['scorer']} {ev['lang']}"] = res
    return rows, curves


def score_set(ev: dict[str, Any], preds: Sequence[tuple[str, list]]) -> dict[str, Any]:
    """Scores of ``preds`` (``(sentence, extractions)`` pairs) on one set of :func:`evaluation_sets`."""
    from .benchmarks import score_extractions

    if ev.get("records") is not None:
        return score_projected(preds, ev["records"])
    kw = {"gold": ev["gold"]} if ev.get("gold") else {}
    return score_extractions(ev["scorer"], preds, lang=ev["lang"], sentences=ev["subset"], **kw)


def score_projected(preds: Sequence[tuple[str, list]], records: Sequence[dict]) -> dict[str, Any]:
    """CaRB scores of predictions against held-out projected records (their tuples are the gold)."""
    import tempfile

    from .benchmarks import score_extractions

    lines = []
    for r in records:
        for t in r["extractions"]:
            fields = [r["sentence"].strip(), t["relation"], t["arg0"] or "", *t["args"]]
            lines.append("\t".join(" ".join(f.split()) for f in fields))
    with tempfile.TemporaryDirectory() as tmp:
        gold = Path(tmp) / "gold.tsv"
        gold.write_text("\n".join(lines) + "\n", encoding="utf-8")
        lang = records[0]["language"] if records else "en"
        return score_extractions("carb", preds, lang=lang, gold=str(gold))


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of evaluation rows."""

    def f(v):
        return "  -  " if v is None else f"{v:.3f}"

    lines = [f"{'benchmark':40s} {'n':>5s} {'empty':>5s} {'P':>6s} {'R':>6s} {'F1':>6s} {'AUC':>6s}"]
    for r in rows:
        lines.append(
            f"{r['benchmark']:40s} {r['sentences']:5d} {r.get('empty_sentences', 0):5d} {f(r['precision']):>6s} "
            f"{f(r['recall']):>6s} {f(r['f1']):>6s} {f(r['auc']):>6s}"
        )
    return "\n".join(lines)


def routing_samples(n: int = 16) -> dict[str, list[str]]:
    """A few test sentences per language for the routing heatmap (routing only; nothing is scored)."""
    from .benchmarks import load_benchmark

    return {lang: list(load_benchmark(bench, lang)["sentence"][:n]) for bench, lang in ROUTING_SAMPLES}
