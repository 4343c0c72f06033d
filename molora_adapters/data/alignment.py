"""Word splitting and alignment of text-only tuple parts to word positions.

Sentences are split into *words*: on whitespace, with punctuation peeled off the edges of words
(``"Australien."`` -> ``"Australien"``, ``"."``; abbreviations, initials and mid-sentence ordinals keep their
period), except for Chinese and Japanese, which are split into characters (their corpora and BenchIE-zh gold
are character-tokenised). Tokenised English (CaRB en test, BenchIE en) splits exactly as on whitespace. Scripts written without spaces
(Chinese, Japanese, Thai, Lao, Khmer, Myanmar) are *tokenised* without spaces between their words
(:func:`is_unspaced`, :func:`join_words`): sub-word tokenizers such as XLM-R's put a word-start marker
``"▁"`` on every pre-split word, which for single characters mostly becomes a lone ``"▁"`` piece. A text-only argument is
aligned by searching its words as a contiguous subsequence of the sentence's words. Every tuple that
cannot be aligned is dropped with a *reason*; reasons are counted in an :class:`AlignmentReport`, so
nothing is lost silently.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

CHAR_LEVEL_LANGUAGES = frozenset({"zh", "ja"})
"""Languages whose words are single characters."""

UNSPACED_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "km", "my"})
"""Languages written without spaces between words: tokenised as unspaced text (see :func:`join_words`)."""

DROP_REASONS: tuple[str, ...] = (
    "empty_relation",
    "relation_not_found",
    "argument_not_found",
    "no_arguments",
    "too_many_arguments",
    "overlapping_spans",
    "position_out_of_range",
    "duplicate_tuple",
    "eval_overlap",
)
"""Every reason a tuple can be dropped for (``eval_overlap``: its sentence is in an evaluation set)."""

_WS = re.compile(r"\S+")

ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr mt gen col lt sgt capt rev hon inc co corp ltd bros vs etc al fig no nos "
    "vol pp ed eds approx ca cf e.g i.e u.s u.k u.n a.d b.c jan feb mar apr jun jul aug sep sept oct nov dec "
    "z.b bzw nr dt sog usw vgl evtl ggf hl s.a u.a d.h sra sres srta núm pág aprox av "
    "г гг т.е т.д др им св".split()
)
"""Words after which a period does not end a sentence (lower-cased, without the final period)."""


def _peelable(char: str) -> bool:
    # punctuation and symbols, but not dashes ("Ein- und Ausgang") or apostrophes ("'s", "students'")
    cat = unicodedata.category(char)
    return cat[0] in "PS" and cat != "Pd" and char not in "'’"


def _peel(text: str, start: int, end: int, last: bool) -> list[tuple[str, int, int]]:
    """Split the whitespace-free chunk ``text[start:end]`` into leading punctuation, the word and trailing
    punctuation, each mark its own word. A period is peeled only off the last chunk of the text and not
    off an abbreviation or initial there (mid-sentence periods belong to abbreviations: ``"Calif."``,
    ``"am 3. Mai"``), and never from the front (``".308"``). A chunk without letters or digits
    (``"..."``, ``"``"``, ``"--"``) stays one word."""
    if not any(c.isalnum() for c in text[start:end]):
        return [(text[start:end], start, end)]
    lo, hi = start, end
    lead: list[tuple[str, int, int]] = []
    while _peelable(text[lo]) and text[lo] != ".":
        k = lo + 1
        while text[k] == text[lo]:  # a run of one mark ("``", "((") is one word
            k += 1
        lead.append((text[lo:k], lo, k))
        lo = k
    trail: list[tuple[str, int, int]] = []
    while _peelable(text[hi - 1]):
        k = hi - 1
        while text[k - 1] == text[hi - 1]:
            k -= 1
        if text[k:hi] == ".":
            core = text[lo:k]
            if (
                not last
                or core.lower() in ABBREVIATIONS
                or "." in core
                or (len(core) == 1 and core.isalpha())
            ):
                break
        trail.append((text[k:hi], k, hi))
        hi = k
    return [*lead, (text[lo:hi], lo, hi), *reversed(trail)]


def is_char_level(language: str | None) -> bool:
    """Whether ``language`` (an ISO code such as ``"zh"`` or ``"zh-Hant"``) is split into characters."""
    return _base_language(language) in CHAR_LEVEL_LANGUAGES


def _is_cjk(char: str) -> bool:
    cp = ord(char)
    return (
        0x3040 <= cp <= 0x30FF  # Hiragana, Katakana
        or 0x3400 <= cp <= 0x4DBF  # CJK Extension A
        or 0x4E00 <= cp <= 0x9FFF  # CJK Unified Ideographs
        or 0xF900 <= cp <= 0xFAFF  # CJK Compatibility Ideographs
        or 0x20000 <= cp <= 0x2FA1F  # CJK Extensions B-F, Compatibility Supplement
    )


def _base_language(language: str | None) -> str:
    return language.split("-")[0].split("_")[0].lower() if language else ""


def is_unspaced_char(char: str) -> bool:
    """Whether ``char`` belongs to a script written without spaces between words (Han, kana, Thai, Lao,
    Myanmar, Khmer) or is CJK / full-width punctuation."""
    cp = ord(char)
    return (
        _is_cjk(char)
        or 0x0E00 <= cp <= 0x0EFF  # Thai, Lao
        or 0x1000 <= cp <= 0x109F  # Myanmar
        or 0x1780 <= cp <= 0x17FF  # Khmer
        or 0x3000 <= cp <= 0x303F  # CJK symbols and punctuation
        or 0xFF00 <= cp <= 0xFFEF  # half- and full-width forms
    )


def is_unspaced(words: Sequence[str], language: str | None = None) -> bool:
    """Whether a sentence's ``words`` should be tokenised as unspaced text (see :func:`join_words`).

    True for languages in :data:`UNSPACED_LANGUAGES` and for any sentence of two or more words that are all
    single characters (character-split text whatever its language code).

    Args:
        words (`Sequence[str]`): the sentence's words.
        language (`str`, *optional*): its language code.
    """
    if _base_language(language) in UNSPACED_LANGUAGES:
        return True
    return len(words) > 1 and all(len(w) == 1 for w in words)


def word_spaces(sentence: str | None, words: Sequence[str]) -> list[bool] | None:
    """For each pair of neighbouring words, whether whitespace separates them in ``sentence``.

    Words are searched left to right; ``None`` when ``sentence`` is missing or does not contain the words
    in order (e.g. re-tokenised words such as ``"n't"``).

    Args:
        sentence (`str`, *optional*): the original text.
        words (`Sequence[str]`): its words.
    """
    if not sentence:
        return None
    spans, cursor = [], 0
    for w in words:
        start = sentence.find(w, cursor)
        if start < 0:
            return None
        spans.append((start, start + len(w)))
        cursor = start + len(w)
    return [
        any(c.isspace() for c in sentence[a[1] : b[0]]) for a, b in zip(spans[:-1], spans[1:], strict=True)
    ]


def join_words(
    words: Sequence[str], spaces: Sequence[bool] | None = None
) -> tuple[str, list[tuple[int, int]]]:
    """Join the words of an unspaced sentence into the text a tokenizer should see.

    Two neighbouring words are separated by one space only when ``spaces`` says the original text had
    whitespace there *and* neither side is a character of an unspaced script (:func:`is_unspaced_char`):
    ``["汉", "服", "作", "为"]`` -> ``"汉服作为"``, while ``"C I T E S"`` or ``"15 - 17"`` keep their spaces.

    Args:
        words (`Sequence[str]`): non-empty words.
        spaces (`Sequence[bool]`, *optional*): per neighbouring pair, whether the original had whitespace
            (:func:`word_spaces`); unknown pairs count as spaced.

    Returns:
        ``(text, spans)``: the text and the character span of every word in it.
    """
    if spaces is not None and len(spaces) != max(len(words) - 1, 0):
        raise ValueError(f"`spaces` has {len(spaces)} entries for {len(words)} words; expected one per pair.")
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    for i, w in enumerate(words):
        if not w:
            raise ValueError(f"Word {i} is empty; words must be non-empty strings.")
        if i:
            spaced = spaces[i - 1] if spaces is not None else True
            if spaced and not (is_unspaced_char(words[i - 1][-1]) or is_unspaced_char(w[0])):
                parts.append(" ")
                pos += 1
        parts.append(w)
        spans.append((pos, pos + len(w)))
        pos += len(w)
    return "".join(parts), spans


def looks_char_level(text: str) -> bool:
    """Whether at least half of the letters of ``text`` are Chinese / Japanese characters."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and 2 * sum(map(_is_cjk, letters)) >= len(letters)


def split_words(text: str, language: str | None = None) -> list[tuple[str, int, int]]:
    """Split ``text`` into ``(word, start, end)`` triples (character offsets into ``text``).

    Args:
        text (`str`): a sentence or a span.
        language (`str`, *optional*): language code; ``zh`` / ``ja`` split into non-space characters. When
            it is ``None``, text that is mostly Chinese / Japanese (:func:`looks_char_level`) is split into
            characters too, anything else on whitespace with punctuation peeled off each word's edges (see
            the module docstring).
    """
    if is_char_level(language) or (language is None and looks_char_level(text)):
        return [(c, i, i + 1) for i, c in enumerate(text) if not c.isspace()]
    chunks = list(_WS.finditer(text))
    return [w for k, m in enumerate(chunks) for w in _peel(text, m.start(), m.end(), k == len(chunks) - 1)]


def _norm(word: str) -> str:
    return unicodedata.normalize("NFKC", word).casefold()


def find_span(
    words: Sequence[str],
    span: Sequence[str],
    *,
    avoid: Iterable[int] = (),
    normalize: bool = True,
) -> list[int] | None:
    """Positions of the first occurrence of ``span`` as a contiguous subsequence of ``words``.

    Occurrences that touch a position in ``avoid`` (e.g. the predicate) are skipped when another
    occurrence exists. Exact matches win over NFKC/case-folded ones.

    Args:
        words (`Sequence[str]`): the sentence's words.
        span (`Sequence[str]`): the span's words.
        avoid (`Iterable[int]`, *optional*): positions a match should not use.
        normalize (`bool`, *optional*, defaults to `True`): fall back to NFKC + case-folded matching.
    """
    n = len(span)
    if n == 0 or n > len(words):
        return None
    avoid = set(avoid)
    variants = [(list(words), list(span))]
    if normalize:
        variants.append(([_norm(w) for w in words], [_norm(w) for w in span]))
    for ws, sp in variants:
        hits = [i for i in range(len(ws) - n + 1) if ws[i : i + n] == sp]
        for i in hits:
            if not avoid.intersection(range(i, i + n)):
                return list(range(i, i + n))
        if hits:
            return list(range(hits[0], hits[0] + n))
    if normalize:  # tokenisation differences ("people's" vs "people 's"): compare without spaces
        target = "".join(_norm(w) for w in span)
        normed = [_norm(w) for w in words]
        fallback = None
        for i in range(len(words)):
            acc = ""
            for j in range(i, len(words)):
                acc += normed[j]
                if not target.startswith(acc):
                    break
                if acc == target:
                    if not avoid.intersection(range(i, j + 1)):
                        return list(range(i, j + 1))
                    fallback = fallback or list(range(i, j + 1))
                    break
        return fallback
    return None


def split_into_spans(
    words: Sequence[str], span: Sequence[str], *, avoid: Iterable[int] = (), max_pieces: int = 3
) -> list[list[int]] | None:
    """Cover ``span`` greedily with the longest contiguous pieces found in ``words``.

    IMoJIE-style objects append extra arguments ("regret for endorsing Glycel later"); each piece
    becomes its own argument. Returns ``None`` when more than ``max_pieces`` pieces are needed or a word
    is not in the sentence.

    Args:
        words (`Sequence[str]`): sentence words.
        span (`Sequence[str]`): the span's words.
        avoid (`Iterable[int]`, *optional*): positions pieces should not use.
        max_pieces (`int`, *optional*, defaults to 3): the most pieces allowed.
    """
    avoid = set(avoid)
    pieces: list[list[int]] = []
    i = 0
    while i < len(span):
        for j in range(len(span), i, -1):
            hit = find_span(words, span[i:j], avoid=avoid)
            if hit is not None:
                pieces.append(hit)
                avoid.update(hit)
                i = j
                break
        else:
            return None
        if len(pieces) > max_pieces:
            return None
    return pieces


@dataclass
class AlignmentReport:
    """Counts of kept and dropped tuples, by reason, with a few examples per reason.

    Args:
        n_examples (`int`, *optional*, defaults to 3): examples kept per reason.
    """

    n_examples: int = 3
    sentences: int = 0
    sentences_dropped: int = 0
    tuples_in: int = 0
    tuples_kept: int = 0
    split_arguments: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def drop(self, reason: str, example: str = "", count: int = 1) -> None:
        """Record ``count`` tuples dropped for ``reason`` (one of :data:`DROP_REASONS`)."""
        if reason not in DROP_REASONS:
            raise ValueError(f"Unknown drop `reason` {reason!r}; use one of {DROP_REASONS}.")
        self.dropped[reason] += count
        ex = self.examples.setdefault(reason, [])
        if example and len(ex) < self.n_examples:
            ex.append(example)

    @property
    def tuples_dropped(self) -> int:
        """All dropped tuples; ``tuples_in == tuples_kept + tuples_dropped`` always holds."""
        return sum(self.dropped.values())

    def to_dict(self) -> dict:
        return {
            "sentences": self.sentences,
            "sentences_dropped": self.sentences_dropped,
            "tuples_in": self.tuples_in,
            "tuples_kept": self.tuples_kept,
            "split_arguments": self.split_arguments,
            "dropped": dict(sorted(self.dropped.items())),
        }

    def summary(self) -> str:
        """One line: ``"N sentences, M tuples: kept K, dropped D (reason=count, ...)"``."""
        drops = ", ".join(f"{k}={v}" for k, v in sorted(self.dropped.items())) or "none"
        return (
            f"{self.sentences} sentences, {self.tuples_in} tuples: kept {self.tuples_kept}, "
            f"dropped {self.tuples_dropped} ({drops})"
        )
