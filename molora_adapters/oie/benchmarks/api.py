"""Scorer registry and the public entry points :func:`score` (files) and :func:`score_extractions`
(in-memory extractions, e.g. decoded during training)."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ...registry import Registry
from ..formats.readers import read_predictions, rows_from_extractions
from ..formats.rows import ExtractionRow, normalize_key
from .benchie import BenchieGold, benchie_score, parse_benchie_gold
from .carb import carb_curve
from .gold import gold_path, read_carb_gold
from .lexical import lexical_score, read_oie2016_gold, read_reoie2016_gold

Scorer = Callable[..., dict]
SCORERS: Registry[Scorer] = Registry("benchmark scorer")

# Parsed gold files, keyed by (kind, absolute path, mtime): scoring inside a training loop should not
# re-parse the gold every evaluation.
_GOLD_CACHE: dict[tuple[str, str, float], Any] = {}


def _cached(kind: str, path: str | os.PathLike, reader: Callable[[str], Any]) -> Any:
    p = os.path.abspath(os.fspath(path))
    if not os.path.exists(p):
        raise FileNotFoundError(f"Gold file `{os.fspath(path)}` does not exist.")
    key = (kind, p, os.path.getmtime(p))
    if key not in _GOLD_CACHE:
        _GOLD_CACHE[key] = reader(p)
    return _GOLD_CACHE[key]


def register_scorer(name: str, scorer: Scorer | None = None, *, overwrite: bool = False):
    """Register a scorer ``(rows: list[ExtractionRow], *, lang, gold, **options) -> dict`` (usable as a
    decorator). The dict has at least ``precision``, ``recall``, ``f1`` and ``auc`` (None if undefined).

    Args:
        name (`str`): the benchmark name used by :func:`score` and ``molora evaluate --benchmark``.
        scorer (`Callable`, *optional*): the scorer; omit to use as a decorator.
        overwrite (`bool`, *optional*, defaults to `False`): replace an existing scorer.
    """
    return SCORERS.register(name, scorer, overwrite=overwrite)


def _need_sentences(rows: Sequence[ExtractionRow], benchmark: str) -> None:
    if any(not r.sentence for r in rows):
        bad = next(r for r in rows if not r.sentence)
        raise ValueError(
            f"{bad.source or 'predictions'}: `{benchmark}` matches sentences by text, but this row has none "
            "(the `benchie` format only carries sentence ids); write the predictions as `tabbed` or `jsonl`."
        )


def _keys(sentences: Iterable[str], known: set[str], benchmark: str) -> set[str]:
    """Normalised keys of ``sentences``, each of which must be in the gold (``known`` keys)."""
    if isinstance(sentences, str):
        raise TypeError("`sentences` must be a collection of sentences, not one string.")
    keys = {normalize_key(s) for s in sentences}
    missing = keys - known
    if missing:
        example = next(s for s in sentences if normalize_key(s) in missing)
        raise ValueError(
            f"`sentences`: {len(missing)} sentence(s) are not in the `{benchmark}` gold, e.g. {example!r}; "
            "pass sentences of the gold (matched as the scorer matches them: spaces and punctuation ignored)."
        )
    return keys


def restrict_gold(gold_rows: Sequence[ExtractionRow], sentences: Iterable[str] | None, benchmark: str):
    """The gold rows of ``sentences`` only (all of them when ``sentences`` is `None`).

    Args:
        gold_rows (`Sequence[ExtractionRow]`): parsed gold.
        sentences (`Iterable[str]`, *optional*): the sentences to score on, e.g. a held-out or sampled
            subset; matched by :func:`~.rows.normalize_key`.
        benchmark (`str`): name used in error messages.
    """
    if sentences is None:
        return gold_rows
    keys = _keys(sentences, {normalize_key(r.sentence) for r in gold_rows}, benchmark)
    return [r for r in gold_rows if normalize_key(r.sentence) in keys]


def _restrict_benchie(gold: BenchieGold, sentences: Iterable[str] | None) -> BenchieGold:
    if sentences is None:
        return gold
    keys = _keys(sentences, set(gold.key_to_id), "benchie")
    ids = [sid for sid in gold.sent_ids if normalize_key(gold.sentences[sid]) in keys]
    return dataclasses.replace(
        gold,
        sent_ids=ids,
        sentences={sid: gold.sentences[sid] for sid in ids},
        synsets={sid: gold.synsets[sid] for sid in ids if sid in gold.synsets},
        key_to_id={},
    )


def _warn_unknown(result: dict, benchmark: str) -> None:
    n = result.get("unknown_predictions", 0)
    if n:
        warnings.warn(
            f"{n} prediction(s) on {result.get('unknown_sentences', '?')} sentence(s) that are not in the "
            f"`{benchmark}` gold were not scored (see `unknown_predictions` in the result).",
            stacklevel=3,
        )


@register_scorer("carb")
def score_carb(
    rows: Sequence[ExtractionRow],
    *,
    lang: str = "en",
    gold: str | os.PathLike | None = None,
    split: str = "test",
    merge_duplicates: bool = False,
    exact_order: bool = True,
    sentences: Iterable[str] | None = None,
) -> dict:
    """CaRB binary lenient match (see :mod:`.carb`).

    Args:
        rows (`Sequence[ExtractionRow]`): predictions in file order.
        lang (`str`, *optional*, defaults to `"en"`): gold language (en, zh, hi, te, es, pt).
        gold (`str`, *optional*): gold file overriding the shipped one.
        split (`str`, *optional*, defaults to `"test"`): ``"test"`` or ``"dev"`` (en).
        merge_duplicates (`bool`, *optional*, defaults to `False`): merge sentence groups sharing a key.
        exact_order (`bool`, *optional*, defaults to `True`): bit-identical curve points (see
            :func:`~.carb.carb_curve`); `False` is the linear-time difference-array accumulation.
        sentences (`Iterable[str]`, *optional*): score on these gold sentences only (see :func:`restrict_gold`).
    """
    _need_sentences(rows, "carb")
    gold_rows = _cached("carb", gold or gold_path("carb", lang, split), read_carb_gold)
    gold_rows = restrict_gold(gold_rows, sentences, "carb")
    res = carb_curve(gold_rows, rows, merge_duplicates=merge_duplicates, exact_order=exact_order)
    p, r, f = res.best
    op, orec, of1 = res.official_best
    auc_rounded = float(np.round(res.auc, 3))
    out = {
        "precision": p,
        "recall": r,
        "f1": f,
        "auc": auc_rounded,
        "auc_raw": res.auc,
        "best_threshold": None if res.best_index is None else float(res.thresholds[res.best_index]),
        # exactly what the official tool prints (3 decimals; F1 NaN when a threshold has P = R = 0)
        "official": {
            "auc": auc_rounded,
            "precision": float(np.round(op, 3)),
            "recall": float(np.round(orec, 3)),
            "f1": float(np.round(of1, 3)),
        },
        "curve": {
            "thresholds": res.thresholds.tolist(),
            "precision": res.precision.tolist(),
            "recall": res.recall.tolist(),
            "kept": res.kept.astype(int).tolist(),
        },
        **res.stats,
    }
    return out


@register_scorer("benchie")
def score_benchie(
    rows: Sequence[ExtractionRow],
    *,
    lang: str = "en",
    gold: str | os.PathLike | None = None,
    tokenize_chars: bool | None = None,
    sentences: Iterable[str] | None = None,
) -> dict:
    """BenchIE exact slot match (see :mod:`.benchie`).

    Args:
        rows (`Sequence[ExtractionRow]`): predictions; placed by ``sent_id`` or by sentence text.
        lang (`str`, *optional*, defaults to `"en"`): gold language (en, de, zh).
        gold (`str`, *optional*): gold file overriding the shipped one.
        tokenize_chars (`bool`, *optional*): re-tokenise predictions into characters; defaults to `True`
            for zh and ja (the zh gold is character-tokenised).
        sentences (`Iterable[str]`, *optional*): score on these gold sentences only.
    """
    g: BenchieGold = _cached("benchie", gold or gold_path("benchie", lang), parse_benchie_gold)
    g = _restrict_benchie(g, sentences)
    if tokenize_chars is None:
        tokenize_chars = lang in ("zh", "ja")
    return benchie_score(g, rows, tokenize_chars=tokenize_chars)


def _read_reoie(path: str) -> list[ExtractionRow]:
    return read_reoie2016_gold(path)


@register_scorer("reoie2016")
def score_reoie2016(
    rows: Sequence[ExtractionRow],
    *,
    lang: str = "en",
    gold: str | os.PathLike | None = None,
    binary: bool = False,
    merge_duplicates: bool = False,
    sentences: Iterable[str] | None = None,
) -> dict:
    """Re-OIE2016 lexical match (SpanOIE / Multi2OIE scorer, see :mod:`.lexical`).

    Args:
        rows (`Sequence[ExtractionRow]`): predictions in file order.
        lang (`str`, *optional*, defaults to `"en"`): gold language (en, es, pt).
        gold (`str`, *optional*): a Re-OIE2016-style JSON file overriding the shipped one.
        binary (`bool`, *optional*, defaults to `False`): use the binary gold variant.
        merge_duplicates (`bool`, *optional*, defaults to `False`): merge sentence groups sharing a key.
        sentences (`Iterable[str]`, *optional*): score on these gold sentences only.
    """
    _need_sentences(rows, "reoie2016")
    path = gold or gold_path("reoie2016", lang, "test", "binary" if binary else "full")
    gold_rows = restrict_gold(_cached("reoie2016", path, _read_reoie), sentences, "reoie2016")
    return lexical_score(gold_rows, rows, merge_duplicates=merge_duplicates)


@register_scorer("oie2016")
def score_oie2016(
    rows: Sequence[ExtractionRow],
    *,
    lang: str = "en",
    gold: str | os.PathLike | None = None,
    split: str = "test",
    merge_duplicates: bool = False,
    sentences: Iterable[str] | None = None,
) -> dict:
    """OIE2016 lexical match with the original OIE2016 gold (SpanOIE / Multi2OIE scorer).

    Args:
        rows (`Sequence[ExtractionRow]`): predictions in file order.
        lang (`str`, *optional*, defaults to `"en"`): only ``"en"`` is shipped.
        gold (`str`, *optional*): gold file overriding the shipped one.
        split (`str`, *optional*, defaults to `"test"`): ``"test"`` or ``"dev"``.
        merge_duplicates (`bool`, *optional*, defaults to `False`): merge sentence groups sharing a key.
        sentences (`Iterable[str]`, *optional*): score on these gold sentences only.
    """
    _need_sentences(rows, "oie2016")
    path = gold or gold_path("oie2016", lang, split)
    gold_rows = restrict_gold(_cached("oie2016", path, read_oie2016_gold), sentences, "oie2016")
    return lexical_score(gold_rows, rows, merge_duplicates=merge_duplicates)


def _finish(result: dict, benchmark: str, lang: str, n_rows: int, source: str) -> dict:
    if n_rows == 0:
        warnings.warn(
            f"{source} has no predictions; `{benchmark}` scores it with the official semantics "
            "(precision, recall, F1 and AUC of an empty system).",
            stacklevel=3,
        )
    _warn_unknown(result, benchmark)
    result.setdefault("auc", None)
    return {"benchmark": benchmark, "lang": lang, **result}


def score(
    benchmark: str,
    predictions: str | os.PathLike,
    *,
    lang: str = "en",
    format: str = "tabbed",
    gold: str | os.PathLike | None = None,
    **options: Any,
) -> dict:
    """Score a system-output file on a benchmark with the official semantics.

    Args:
        benchmark (`str`): ``"carb"``, ``"benchie"``, ``"reoie2016"``, ``"oie2016"`` or a registered name.
        predictions (`str` or `os.PathLike`): the system-output file.
        lang (`str`, *optional*, defaults to `"en"`): gold language.
        format (`str`, *optional*, defaults to `"tabbed"`): ``"tabbed"``, ``"openie4"``, ``"benchie"`` or
            ``"jsonl"`` (see :mod:`.readers`).
        gold (`str`, *optional*): gold file overriding the shipped one.
        **options: scorer options (e.g. ``merge_duplicates=True`` for CaRB, ``binary=True`` for Re-OIE2016,
            ``sentences=[...]`` for every built-in scorer: score on a subset of the gold sentences, e.g. a
            held-out or sampled evaluation set, without writing a filtered gold file).

    Returns:
        `dict`: at least ``precision``, ``recall``, ``f1`` and ``auc`` (None where the benchmark has none),
        plus counts (``unknown_predictions`` for rows on sentences not in the gold) and, for curve-based
        benchmarks, ``curve``.
    """
    scorer = SCORERS.get(benchmark)
    rows = read_predictions(predictions, format)
    result = scorer(rows, lang=lang, gold=gold, **options)
    return _finish(result, benchmark, lang, len(rows), os.fspath(predictions))


def score_extractions(
    benchmark: str,
    predictions: Any,
    *,
    lang: str = "en",
    gold: str | os.PathLike | None = None,
    **options: Any,
) -> dict:
    """Score in-memory extractions (no files), e.g. decoded during evaluation in a training loop.

    Args:
        benchmark (`str`): see :func:`score`.
        predictions: ``[(sentence, [extraction, ...]), ...]``, ``{sentence: [extraction, ...]}``, records
            with ``sentence``/``extractions`` or extractions carrying a ``sentence``; an extraction is a
            dict or object with ``arg0``, ``relation``, ``args`` and ``confidence`` (see
            :func:`~.readers.rows_from_extractions`). For BenchIE a record's ``sent_id`` is used if given,
            else the sentence text.
        lang (`str`, *optional*, defaults to `"en"`): gold language.
        gold (`str`, *optional*): gold file overriding the shipped one.
        **options: scorer options, as for :func:`score`.
    """
    scorer = SCORERS.get(benchmark)
    rows = rows_from_extractions(predictions)
    result = scorer(rows, lang=lang, gold=gold, **options)
    return _finish(result, benchmark, lang, len(rows), "<predictions>")
