"""Validation of one generated example: language check, span alignment and word positions.

Words of a translation are produced by :func:`tokenize`:

* spaced languages: split on whitespace, then peel punctuation off both ends of each chunk
  (``"mat."`` -> ``"mat"``, ``"."``), so that scripts whose vowel signs are not ``\\w`` (Hindi,
  Telugu) stay whole words;
* unspaced languages (zh, ja, th): one word per character, except that runs of Latin letters or
  digits (``"iPhone"``, ``"2016"``) stay one word, and whitespace is dropped. This is the
  character-level segmentation of BenchIE's Chinese gold and of the paper, and it makes span
  matching insensitive to the spaces an LLM may put between CJK words.

An element (subject, relation, object) is accepted when its own tokens occur as a contiguous run of
the translation's tokens (case-insensitive, NFKC-normalised). Its text in the record is the exact
slice of the translation covering that run, and its positions are the word indices of the run.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import Enum

from ..schema import OIETuple
from .languages import check_language, get_language, script_of
from .parsing import ParsedTriple


class RejectReason(str, Enum):
    """Why a (sentence, language) pair produced no record; the value is what the rejects file stores."""

    BACKEND_ERROR = "backend_error"  # the LLM could not be reached after all retries (not cached)
    TRANSLATION_PARSE = "translation_unparseable"
    WRONG_LANGUAGE = "wrong_language"
    UNTRANSLATED = "untranslated"
    ANNOTATION_PARSE = "annotation_unparseable"
    COUNT_MISMATCH = "triple_count_mismatch"
    EMPTY_ELEMENT = "empty_element"
    NOT_A_SPAN = "not_a_span"


class ValidationError(ValueError):
    """A generated example failed validation.

    Args:
        reason (`RejectReason`): the machine-readable reason.
        detail (`str`): a human-readable explanation, kept in the rejects file.
    """

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class Token:
    text: str
    start: int
    end: int


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def _is_alnum_run(ch: str) -> bool:
    return (script_of(ch) == "latin") or ch.isdigit()


def tokenize(text: str, language: str) -> list[Token]:
    """Split ``text`` into word tokens with character offsets (see module docstring).

    Args:
        text (`str`): the sentence or element.
        language (`str`): its language code; decides spaced vs. unspaced rules.
    """
    tokens: list[Token] = []
    if get_language(language).unspaced:
        i = 0
        while i < len(text):
            ch = text[i]
            if ch.isspace():
                i += 1
                continue
            j = i + 1
            if _is_alnum_run(ch):
                while j < len(text) and _is_alnum_run(text[j]):
                    j += 1
            tokens.append(Token(text[i:j], i, j))
            i = j
        return tokens
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        j = i
        while j < n and not text[j].isspace():
            j += 1
        # peel leading / trailing punctuation off the chunk text[i:j]
        lo, hi = i, j
        while lo < hi and _is_punct(text[lo]):
            tokens.append(Token(text[lo], lo, lo + 1))
            lo += 1
        trailing: list[Token] = []
        while hi > lo and _is_punct(text[hi - 1]):
            trailing.append(Token(text[hi - 1], hi - 1, hi))
            hi -= 1
        if hi > lo:
            tokens.append(Token(text[lo:hi], lo, hi))
        tokens.extend(reversed(trailing))
        i = j
    return tokens


def _norm(s: str) -> str:
    return unicodedata.normalize("NFKC", s).casefold()


def find_span(words: list[str], element: list[str], used: set[int] | None = None) -> list[int] | None:
    """Word indices of the first contiguous occurrence of ``element`` in ``words``, or `None`.

    An occurrence that does not overlap ``used`` (positions of elements already aligned in the same
    triple) is preferred, so that ``"he" ... "he"`` picks distinct words when it can.
    """
    if not element or len(element) > len(words):
        return None
    w = [_norm(x) for x in words]
    e = [_norm(x) for x in element]
    hits = [list(range(i, i + len(e))) for i in range(len(w) - len(e) + 1) if w[i : i + len(e)] == e]
    if not hits:
        return None
    if used:
        for h in hits:
            if not used.intersection(h):
                return h
    return hits[0]


def check_translation(english: str, translation: str, language: str) -> None:
    """Raise :class:`ValidationError` unless ``translation`` is a non-trivial text in ``language``."""
    if not translation.strip():
        raise ValidationError(RejectReason.TRANSLATION_PARSE, "empty translation")
    if _norm(" ".join(english.split())) == _norm(" ".join(translation.split())):
        raise ValidationError(RejectReason.UNTRANSLATED, "translation is identical to the English sentence")
    problem = check_language(translation, language)
    if problem is not None:
        raise ValidationError(RejectReason.WRONG_LANGUAGE, f"not {language}: {problem}")


_EDGE_PUNCT = set(".,;:!?。，、；：！？\"'“”„«»「」『』")


def _trim_punct(tokens: list[str]) -> list[str]:
    """Drop sentence punctuation and quotes at both ends of an element (``"der Matte."`` -> ``der Matte``)."""
    lo, hi = 0, len(tokens)
    while hi - lo > 1 and tokens[hi - 1] in _EDGE_PUNCT:
        hi -= 1
    while hi - lo > 1 and tokens[lo] in _EDGE_PUNCT:
        lo += 1
    return tokens[lo:hi]


def _strip_element(s: str) -> str:
    return s.strip().strip("\"'“”„«»「」『』").strip()


def align_triples(
    translation: str, language: str, triples: list[ParsedTriple], n_objects: list[int]
) -> tuple[list[str], list[OIETuple]]:
    """Align parsed triples to the translation, all-or-nothing.

    Args:
        translation (`str`): the target-language sentence.
        language (`str`): its code.
        triples (`list[ParsedTriple]`): the LLM's answer, one per English extraction, same order.
        n_objects (`list[int]`): number of objects of each English extraction.

    Returns:
        `tuple[list[str], list[OIETuple]]`: the translation's words and the aligned tuples.

    Raises:
        ValidationError: on a count mismatch, an empty element or an element that is not a span.
    """
    if len(triples) != len(n_objects):
        raise ValidationError(
            RejectReason.COUNT_MISMATCH, f"expected {len(n_objects)} triples, got {len(triples)}"
        )
    toks = tokenize(translation, language)
    words = [t.text for t in toks]
    out: list[OIETuple] = []
    for k, (tri, n_obj) in enumerate(zip(triples, n_objects, strict=True)):
        objects = [o for o in (_strip_element(o) for o in tri.objects) if o]
        if len(objects) != n_obj:
            raise ValidationError(
                RejectReason.COUNT_MISMATCH, f"triple {k}: expected {n_obj} object(s), got {len(objects)}"
            )
        used: set[int] = set()
        spans: list[tuple[str, list[int]]] = []
        for role, text in [("subject", tri.subject), ("relation", tri.relation)] + [
            (f"object {i}", o) for i, o in enumerate(objects)
        ]:
            text = _strip_element(text)
            if not text:
                raise ValidationError(RejectReason.EMPTY_ELEMENT, f"triple {k}: empty {role}")
            pos = find_span(words, _trim_punct([t.text for t in tokenize(text, language)]), used)
            if pos is None:
                raise ValidationError(
                    RejectReason.NOT_A_SPAN, f"triple {k}: {role} {text!r} is not a span of the translation"
                )
            used.update(pos)
            spans.append((translation[toks[pos[0]].start : toks[pos[-1]].end], pos))
        (subj, subj_pos), (rel, rel_pos), *objs = spans
        out.append(
            OIETuple(
                arg0=subj,
                relation=rel,
                args=[o for o, _ in objs],
                arg0_pos=subj_pos,
                relation_pos=rel_pos,
                args_pos=[p for _, p in objs],
            )
        )
    return words, out
