"""The typed result of extraction: one n-ary tuple of one sentence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the schema imports `datasets`; extraction does not need it
    from ..data.schema import OIETuple


@dataclass
class Extraction:
    """One extracted n-ary tuple ``(arg0; relation; args...)``.

    Positions are word indices into the sentence's words (see
    :func:`molora_adapters.data.alignment.split_words`; Chinese and Japanese are split into characters).

    Args:
        sentence (`str`): the input sentence.
        relation (`str`): relation (predicate) text.
        arg0 (`str`): subject text; empty when the model found no ``A0``.
        args (`list[str]`, *optional*): further arguments ``A1``... in order.
        confidence (`float`, *optional*, defaults to 1.0): see :func:`molora_adapters.oie.decoding.confidence`.
        relation_pos / arg0_pos / args_pos: word positions of each part.
        language (`str`, *optional*): language code of the sentence, if known.
        sentence_index (`int`, *optional*): index of the sentence in the input batch.
    """

    sentence: str
    relation: str
    arg0: str
    args: list[str] = field(default_factory=list)
    confidence: float = 1.0
    relation_pos: list[int] = field(default_factory=list)
    arg0_pos: list[int] = field(default_factory=list)
    args_pos: list[list[int]] = field(default_factory=list)
    language: str | None = None
    sentence_index: int | None = None

    @property
    def arguments(self) -> list[str]:
        """All arguments in CaRB order: ``[arg0, *args]``."""
        return [self.arg0, *self.args]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_oie_tuple(self) -> OIETuple:
        """The extraction in the shared training schema."""
        from ..data.schema import OIETuple

        return OIETuple(
            arg0=self.arg0,
            relation=self.relation,
            args=list(self.args),
            confidence=float(self.confidence),
            arg0_pos=list(self.arg0_pos),
            relation_pos=list(self.relation_pos),
            args_pos=[list(p) for p in self.args_pos],
        )


def span_text(sentence: str, offsets: Sequence[tuple[int, int]], positions: Sequence[int]) -> str:
    """Surface text of word ``positions``: each contiguous run is cut from ``sentence`` verbatim
    (so Chinese keeps no spaces and original spacing survives), runs are joined by one space.

    Args:
        sentence (`str`): the sentence the offsets point into.
        offsets (`Sequence[tuple[int, int]]`): character ``(start, end)`` of every word.
        positions (`Sequence[int]`): word indices.
    """
    runs: list[list[int]] = []
    for p in sorted(set(positions)):
        if runs and p == runs[-1][-1] + 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return " ".join(sentence[offsets[r[0]][0] : offsets[r[-1]][1]] for r in runs)
