"""Sentences and words with character offsets, and the sentence splitter for parallel paragraphs.

A :class:`Sentence` keeps its text, its words and each word's ``(start, end)`` character offsets, so
that sub-word pieces of any tokenizer can be mapped back to words through offsets alone. Words come
from :func:`molora_adapters.data.llm.validation.tokenize` (the same word rules as ``molora annotate``,
so projected and LLM-generated records tokenise alike): spaced scripts split on whitespace with
punctuation peeled off; unspaced scripts (zh, ja, th) one word per character, Latin/digit runs kept.

:func:`split_sentences` is a rule-based splitter: after ``. ! ?`` (and ``。！？।؟``) when the next
non-quote character does not start in lower case, except after known abbreviations, single-letter
initials and German ordinal numbers (``am 3. Mai``). It is only the first step: sentences are then paired across
languages and only confident 1:1 pairs are kept (see :mod:`.pairing`), so a splitting error costs a
pair, never a wrong pair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..alignment import ABBREVIATIONS as _ABBREVIATIONS
from ..llm.languages import get_language
from ..llm.validation import tokenize

__all__ = ["Sentence", "split_sentences"]


@dataclass(frozen=True)
class Sentence:
    """A sentence with words and their character offsets into ``text``.

    Args:
        text (`str`): the sentence.
        language (`str`): its language code.
        words (`tuple[str, ...]`): its words.
        spans (`tuple[tuple[int, int], ...]`): ``(start, end)`` of each word in ``text``.
    """

    text: str
    language: str
    words: tuple[str, ...] = field(default=())
    spans: tuple[tuple[int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        if len(self.words) != len(self.spans):
            raise ValueError(f"`words` ({len(self.words)}) and `spans` ({len(self.spans)}) differ in length.")
        for w, (a, b) in zip(self.words, self.spans, strict=True):
            if self.text[a:b] != w:
                raise ValueError(f"word {w!r} does not match `text[{a}:{b}]` = {self.text[a:b]!r}.")

    @classmethod
    def from_text(cls, text: str, language: str) -> Sentence:
        """Split ``text`` into words with the project's word rules (see module docstring)."""
        toks = tokenize(text, language)
        return cls(text, language, tuple(t.text for t in toks), tuple((t.start, t.end) for t in toks))

    @classmethod
    def from_words(cls, words: list[str] | tuple[str, ...], language: str) -> Sentence:
        """A pre-tokenised sentence (gold with word indices): ``text`` is the words joined by spaces."""
        if not words or any(not w or any(c.isspace() for c in w) for w in words):
            raise ValueError(
                f"`words` must be non-empty strings without whitespace, got {list(words)[:8]!r}."
            )
        spans, pos = [], 0
        for w in words:
            spans.append((pos, pos + len(w)))
            pos += len(w) + 1
        return cls(" ".join(words), language, tuple(words), tuple(spans))


_ENDERS = ".!?。！？।؟"
_CLOSERS = "\"'”’»)]」』）"
_OPENERS = "\"'“‘«([「『（¿¡"


def _is_boundary(text: str, i: int, unspaced: bool, ordinals: bool) -> int | None:
    """If a sentence ends with the ender at ``text[i]``, the index where the next one starts."""
    j = i + 1
    while j < len(text) and (text[j] in _ENDERS or text[j] in _CLOSERS):
        j += 1
    end = j
    if unspaced and text[i] in "。！？":
        while j < len(text) and text[j].isspace():
            j += 1
        return j if j < len(text) else None
    if j >= len(text) or not text[j].isspace():
        return None  # "3.5", "U.S.", "example.com"
    while j < len(text) and text[j].isspace():
        j += 1
    if j >= len(text):
        return None
    k = j
    while k < len(text) and text[k] in _OPENERS:
        k += 1
    if k < len(text) and text[k].islower():
        return None
    if text[i] == ".":
        m = re.search(r"(\S+)$", text[:i])
        prev = m.group(1).lstrip(_OPENERS).lower() if m else ""
        if prev in _ABBREVIATIONS or (len(prev) == 1 and prev.isalpha()):
            return None
        if ordinals and prev.isdigit() and end == i + 1:  # German "am 3. Mai": an ordinal, not an end
            return None
    return j


def split_sentences(text: str, language: str) -> list[str]:
    """Split a paragraph into sentences (see module docstring); whitespace at the edges is dropped.

    Args:
        text (`str`): the paragraph.
        language (`str`): its language code (``zh``/``ja`` split after ``。！？`` without a space).
    """
    unspaced = get_language(language).unspaced
    ordinals = language == "de"
    out, start = [], 0
    for i, ch in enumerate(text):
        if ch in _ENDERS and i >= start:
            nxt = _is_boundary(text, i, unspaced, ordinals)
            if nxt is not None:
                piece = text[start:nxt].strip()
                if piece:
                    out.append(piece)
                start = nxt
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out
