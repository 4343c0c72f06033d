"""Leak check: no projected sentence may be (a translation of) an evaluation sentence.

Translations of a test sentence are found through the English side: a projected record's English
source sentence is compared with the English evaluation sentences (BenchIE de/zh are translations of
BenchIE en, CaRB's multilingual sets of CaRB / Re-OIE2016 en). Target sentences are also compared
directly with the evaluation sets of their language. Two sentences collide when their normalised
texts are equal or they share a run of ``n`` words (``n`` characters for unspaced scripts).

``molora project`` rejects such pairs as ``eval_overlap`` (:func:`eval_overlap`), which also catches
template sentences ("... had children under the age of 18 living with them ...") that are not
translations of a test sentence: a few false alarms cost a few pairs, a leak would cost the evaluation.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable

from ..llm.languages import get_language

__all__ = ["EvaluationSentences", "eval_overlap", "evaluation_shingles", "find_leaks", "shingles"]


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[^\w]+", " ", text).strip()


def shingles(text: str, language: str = "en", n: int = 8) -> set[str]:
    """Runs of ``n`` words (characters for unspaced languages) of the normalised text."""
    t = _norm(text)
    if get_language(language).unspaced:
        t = t.replace(" ", "")
        return {t[i : i + n] for i in range(len(t) - n + 1)} or {t}
    w = t.split()
    return {" ".join(w[i : i + n]) for i in range(len(w) - n + 1)} or {" ".join(w)}


def find_leaks(
    sentences: Iterable[str], test_sentences: Iterable[str], language: str = "en", n: int | None = None
) -> list[tuple[int, str]]:
    """Indices (and texts) of ``sentences`` that collide with any of ``test_sentences``.

    Args:
        sentences (`Iterable[str]`): candidate training sentences.
        test_sentences (`Iterable[str]`): evaluation sentences of the same language.
        language (`str`, *optional*, defaults to `"en"`): their language.
        n (`int`, *optional*): shingle length; defaults to 8 words, or 12 characters for unspaced scripts.
    """
    n = n or (12 if get_language(language).unspaced else 8)
    index: set[str] = set()
    for s in test_sentences:
        index |= shingles(s, language, n)
    return [(i, s) for i, s in enumerate(sentences) if shingles(s, language, n) & index]


EvaluationSentences = Callable[[str], Iterable[str]]
"""``language -> evaluation sentences`` of that language (e.g.
:func:`molora_adapters.oie.projection.evaluation_sentences`, which ``molora project`` passes)."""


@functools.cache
def evaluation_shingles(evaluation_sentences: EvaluationSentences, language: str, n: int) -> frozenset[str]:
    """Shingles of every evaluation sentence of ``language`` (cached per callable, language and ``n``)."""
    out: set[str] = set()
    for sentence in evaluation_sentences(language):
        out |= shingles(sentence, language, n)
    return frozenset(out)


def eval_overlap(sentence: str, language: str, evaluation_sentences: EvaluationSentences) -> bool:
    """Whether ``sentence`` collides with an evaluation sentence of its language.

    Args:
        sentence (`str`): a candidate training sentence.
        language (`str`): its language code.
        evaluation_sentences (`Callable[[str], Iterable[str]]`): ``language -> evaluation sentences``.
    """
    n = 12 if get_language(language).unspaced else 8
    return bool(shingles(sentence, language, n) & evaluation_shingles(evaluation_sentences, language, n))
