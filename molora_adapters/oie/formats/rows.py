"""The row type shared by every reader, writer and scorer, and the sentence-key normalisation."""

from __future__ import annotations

import re
import string
from typing import NamedTuple

from ...utils.text import unescape_ptb


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


_PUNCT_RE = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_key(sentence: str) -> str:
    """The key under which CaRB and the OIE2016 scorer match sentences: spaces dropped, PTB escapes
    undone, ASCII punctuation removed (the official tools' ``normalizeKey``)."""
    s = sentence.replace(" ", "")
    s = unescape_ptb(s, quotes=False)  # the official tools undo only the bracket escapes
    return _PUNCT_RE.sub("", s)


def char_tokenize(text: str) -> str:
    """Character tokenisation used by the BenchIE zh gold: every non-space character, space-separated."""
    return " ".join(ch for ch in text if not ch.isspace())
