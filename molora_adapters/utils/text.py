"""Text helpers shared by the scorers and the LLM-data pipeline."""

from __future__ import annotations

__all__ = ["PTB_BRACKET_ESCAPES", "PTB_ESCAPES", "unescape_ptb"]

# Penn Treebank escapes as ``(raw, escaped)`` pairs: the brackets, undone by the official OIE scorers
# before comparing sentences, then the quote pairs, which only the LLM-data detokeniser undoes.
PTB_BRACKET_ESCAPES: tuple[tuple[str, str], ...] = (
    ("(", "-LRB-"),
    (")", "-RRB-"),
    ("[", "-LSB-"),
    ("]", "-RSB-"),
    ("{", "-LCB-"),
    ("}", "-RCB-"),
)
PTB_ESCAPES: tuple[tuple[str, str], ...] = PTB_BRACKET_ESCAPES + (('"', "``"), ('"', "''"))


def unescape_ptb(text: str, *, quotes: bool = True) -> str:
    """Undo Penn Treebank escapes (``-LRB-`` -> ``(``, ...; with ``quotes`` also ````` and ``''`` -> ``"``)."""
    for raw, escaped in PTB_ESCAPES if quotes else PTB_BRACKET_ESCAPES:
        text = text.replace(escaped, raw)
    return text
