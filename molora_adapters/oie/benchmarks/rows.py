"""The row type shared by every reader, writer and scorer, and the sentence-key normalisation."""

from __future__ import annotations

import re
import string
from typing import NamedTuple


class ExtractionRow(NamedTuple):
    """One extraction as it appears in a gold or prediction file.

    Args:
        sentence (`str`): the sentence exactly as written in the file (CaRB groups by this string).
        relation (`str`): the relation phrase.
        args (`tuple[str, ...]`): ``(arg0, arg1, ...)`` in file order.
        confidence (`float`, *optional*, defaults to 1.0): the system's confidence.
        sent_id (`str`, *optional*): sentence id (BenchIE files identify sentences by id).
        source (`str`, *optional*): ``"file:line"`` of the row, used in error messages.
    """

    sentence: str
    relation: str
    args: tuple[str, ...]
    confidence: float = 1.0
    sent_id: str | None = None
    source: str = ""


# Penn Treebank bracket escapes, undone by the official scorers before comparing sentences.
PTB_ESCAPES = (
    ("(", "-LRB-"),
    (")", "-RRB-"),
    ("[", "-LSB-"),
    ("]", "-RSB-"),
    ("{", "-LCB-"),
    ("}", "-RCB-"),
)
_PUNCT_RE = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_key(sentence: str) -> str:
    """The key under which CaRB and the OIE2016 scorer match sentences: spaces dropped, PTB escapes
    undone, ASCII punctuation removed (the official tools' ``normalizeKey``)."""
    s = sentence.replace(" ", "")
    for raw, escaped in PTB_ESCAPES:
        s = s.replace(escaped, raw)
    return _PUNCT_RE.sub("", s)


def char_tokenize(text: str) -> str:
    """Character tokenisation used by the BenchIE zh gold: every non-space character, space-separated."""
    return " ".join(ch for ch in text if not ch.isspace())
