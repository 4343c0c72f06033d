"""Few-shot data that does not leak test data: translated Re-OIE2016 sentences and their English originals.

The Spanish and Portuguese Re-OIE2016 sets are translations of the English one (sentence by sentence, in the
same order; the Portuguese file lacks one sentence). The English Re-OIE2016 sentences are OIE2016 test
sentences, and 587 of the 595 are also CaRB en test sentences (130 are BenchIE en sentences), whose
translations are in turn the multilingual CaRB test sets. Training on a translated sentence whose English
original is scored as a test sentence leaks that test item, so few-shot data is drawn only from translations
whose original is in **no** test set (:func:`leak_free_few_shot`): with the shipped sets, 8 sentences per
language.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

import datasets

from .gold import load_benchmark

__all__ = ["DEFAULT_TEST_SETS", "align_translations", "leak_free_few_shot", "reoie2016_english_originals"]

DEFAULT_TEST_SETS: tuple[tuple[str, str], ...] = (("carb", "en"), ("benchie", "en"))
"""English test sets (benchmark, language) whose sentences must not reach training through translations."""

_ANCHOR = re.compile(r"\d+|[^\W\d_]*[A-Z][^\W\d_]+")


def _anchors(sentence: str) -> set[str]:
    """Numbers (digits only, "30,1" == "30.1") and capitalised words, which translations mostly keep."""
    return {a.replace(",", "").replace(".", "") for a in _ANCHOR.findall(sentence)}


def _similarity(a: str, b: str, anchors_a: set[str], anchors_b: set[str]) -> float:
    union = anchors_a | anchors_b
    jaccard = len(anchors_a & anchors_b) / len(union) if union else 0.0
    la, lb = len(a.split()), len(b.split())
    return jaccard + 0.5 * min(la, lb) / max(la, lb, 1)


def align_translations(
    translations: Sequence[str], originals: Sequence[str], *, band: int = 20
) -> list[int | None]:
    """Monotone alignment of translated sentences to their originals (both in the same order, some missing).

    A dynamic programme maximises the summed similarity (shared numbers and capitalised words, length ratio)
    of the aligned pairs within ``band`` positions of the diagonal.

    Args:
        translations (`Sequence[str]`): translated sentences.
        originals (`Sequence[str]`): the originals, in the same order.
        band (`int`, *optional*, defaults to 20): the most the two positions of a pair may differ.

    Returns:
        For every translation, the index of its original (``None`` when it was left unaligned).
    """
    n, m = len(translations), len(originals)
    ta, oa = [_anchors(s) for s in translations], [_anchors(s) for s in originals]
    neg = float("-inf")
    score = [[neg] * (m + 1) for _ in range(n + 1)]
    back: list[list[int]] = [
        [0] * (m + 1) for _ in range(n + 1)
    ]  # 0 pair, 1 skip translation, 2 skip original
    score[0][0] = 0.0
    for i in range(n + 1):
        for j in range(max(0, i - band), min(m, i + band) + 1):
            if i == 0 and j == 0:
                continue
            best, move = neg, 0
            if i and j and score[i - 1][j - 1] > neg:
                best = score[i - 1][j - 1] + _similarity(
                    translations[i - 1], originals[j - 1], ta[i - 1], oa[j - 1]
                )
            if i and score[i - 1][j] > best:
                best, move = score[i - 1][j], 1
            if j and score[i][j - 1] > best:
                best, move = score[i][j - 1], 2
            score[i][j], back[i][j] = best, move
    if score[n][m] == neg:
        raise ValueError(f"Cannot align {n} translations to {m} originals within `band`={band}; widen it.")
    out: list[int | None] = [None] * n
    i, j = n, m
    while i or j:
        move = back[i][j]
        if move == 0:
            out[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif move == 1:
            i -= 1
        else:
            j -= 1
    return out


def reoie2016_english_originals(lang: str) -> list[str | None]:
    """The English original of every sentence of the shipped Re-OIE2016 ``lang`` set (``None`` if unknown).

    Args:
        lang (`str`): ``"es"`` or ``"pt"``.
    """
    if lang == "en":
        raise ValueError("`lang`='en' is the English set itself; pass a translated set such as 'es' or 'pt'.")
    return list(_originals(lang))


@functools.lru_cache(maxsize=8)
def _originals(lang: str) -> tuple[str | None, ...]:  # the shipped files never change within a process
    translated = load_benchmark("reoie2016", lang)["sentence"]
    english = load_benchmark("reoie2016", "en")["sentence"]
    return tuple(english[k] if k is not None else None for k in align_translations(translated, english))


def _key(sentence: str) -> str:
    """Lower-cased letters and digits only: a test sentence counts as seen whatever its tokenisation."""
    return re.sub(r"[\W_]", "", sentence.lower())


@functools.lru_cache(maxsize=8)
def _test_keys(test_sets: tuple[tuple[str, str], ...]) -> frozenset[str]:
    return frozenset({_key(s) for name, lang in test_sets for s in load_benchmark(name, lang)["sentence"]})


def leak_free_few_shot(
    lang: str,
    n: int | None = None,
    *,
    test_sets: Iterable[tuple[str, str]] = DEFAULT_TEST_SETS,
) -> datasets.Dataset:
    """Re-OIE2016 ``lang`` records whose English original is in none of ``test_sets`` (and is known).

    Args:
        lang (`str`): ``"es"`` or ``"pt"``.
        n (`int`, *optional*): at most this many, in file order; all by default.
        test_sets (`Iterable[tuple[str, str]]`, *optional*, defaults to CaRB en and BenchIE en):
            ``(benchmark, language)`` test sets, as for :func:`~molora_adapters.oie.benchmarks.load_benchmark`.

    Returns:
        `datasets.Dataset` of gold records (the OIE schema), ready for training.
    """
    if n is not None and n < 0:
        raise ValueError(f"`n` must be >= 0, got {n}.")
    keys = _test_keys(tuple((str(b), str(lg)) for b, lg in test_sets))
    originals = reoie2016_english_originals(lang)
    keep = [i for i, en in enumerate(originals) if en is not None and _key(en) not in keys]
    gold = load_benchmark("reoie2016", lang)
    return gold.select(keep[:n] if n is not None else keep)
