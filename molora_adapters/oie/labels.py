"""Tag sets of the Multi2OIE taggers and the conversion between tuples and word-level BIO tags.

Two taggers share one encoder (Ro et al., 2020, "Multi^2OIE", Findings of EMNLP):

* the **predicate tagger** marks every predicate of the sentence with ``P-B`` / ``P-I`` / ``O``;
* the **argument tagger** is conditioned on *one* predicate and marks up to four arguments
  ``A0``-``A3`` with ``-B`` / ``-I`` suffixes (plus ``O``).

Tags here are *word*-level; :mod:`molora_adapters.oie.features` moves them onto sub-words.
``A0`` is the subject (``arg0`` of :class:`~molora_adapters.data.schema.OIETuple`), ``A1``-``A3``
are ``args[0]``-``args[2]``.
"""

from __future__ import annotations

from collections.abc import Sequence

IGNORE_INDEX = -100
"""Label id of sub-word positions that are not scored (continuation pieces, special tokens, padding)."""

OUTSIDE = "O"
PRED_LABELS: tuple[str, ...] = ("O", "P-B", "P-I")
MAX_ARGS = 4
"""Argument roles the tagger knows: ``A0`` (subject) plus three more."""
ARG_ROLES: tuple[str, ...] = tuple(f"A{i}" for i in range(MAX_ARGS))
ARG_LABELS: tuple[str, ...] = ("O",) + tuple(f"{role}-{bio}" for role in ARG_ROLES for bio in ("B", "I"))

PRED_LABEL2ID = {label: i for i, label in enumerate(PRED_LABELS)}
ARG_LABEL2ID = {label: i for i, label in enumerate(ARG_LABELS)}


def _check_positions(field: str, positions: Sequence[int], n_words: int) -> None:
    bad = [p for p in positions if not 0 <= p < n_words]
    if bad:
        raise ValueError(f"`{field}` has word positions {bad} outside a sentence of {n_words} words.")


def span_tags(positions: Sequence[int], role: str, n_words: int) -> list[str]:
    """Word tags of one (possibly discontinuous) span: ``{role}-B`` opens every contiguous run.

    Args:
        positions (`Sequence[int]`): word indices of the span, in any order.
        role (`str`): ``"P"`` or ``"A0"`` ... ``"A3"``.
        n_words (`int`): sentence length in words.
    """
    tags = [OUTSIDE] * n_words
    prev = None
    for p in sorted(set(positions)):
        tags[p] = f"{role}-I" if prev is not None and p == prev + 1 else f"{role}-B"
        prev = p
    return tags


def predicate_tags(relation_positions: Sequence[Sequence[int]], n_words: int) -> list[str]:
    """Sentence-level predicate tags covering *all* predicates (the predicate tagger's target).

    Args:
        relation_positions (`Sequence[Sequence[int]]`): word positions of every predicate of the sentence.
        n_words (`int`): sentence length in words.
    """
    tags = [OUTSIDE] * n_words
    for i, positions in enumerate(relation_positions):
        _check_positions(f"relation_pos[{i}]", positions, n_words)
        for j, tag in enumerate(span_tags(positions, "P", n_words)):
            if tag != OUTSIDE and tags[j] == OUTSIDE:
                tags[j] = tag
    return tags


def argument_tags(arg0_pos: Sequence[int], args_pos: Sequence[Sequence[int]], n_words: int) -> list[str]:
    """Word tags of the arguments of one predicate (the argument tagger's target).

    Args:
        arg0_pos (`Sequence[int]`): positions of the subject (``A0``); empty when there is none.
        args_pos (`Sequence[Sequence[int]]`): positions of the further arguments (``A1``...), at most
            ``MAX_ARGS - 1`` of them.
        n_words (`int`): sentence length in words.

    Raises:
        ValueError: when there are too many arguments or two arguments overlap.
    """
    if len(args_pos) > MAX_ARGS - 1:
        raise ValueError(
            f"`args_pos` has {len(args_pos)} arguments but the tagger knows only A1-A{MAX_ARGS - 1}; "
            "drop or merge the extra arguments first."
        )
    tags = [OUTSIDE] * n_words
    for role, positions in zip(ARG_ROLES, [arg0_pos, *args_pos], strict=False):
        _check_positions(f"{role} positions", positions, n_words)
        for j, tag in enumerate(span_tags(positions, role, n_words)):
            if tag == OUTSIDE:
                continue
            if tags[j] != OUTSIDE:
                raise ValueError(f"Arguments overlap at word {j}: `{tags[j]}` and `{tag}`.")
            tags[j] = tag
    return tags
