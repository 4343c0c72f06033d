"""Word-level tags -> predicate spans -> n-ary tuples, with repair of ill-formed tag sequences.

Confidence (as in Multi2OIE, ``utils/bio.py::get_confidence_score``): the probability of the predicted
tag at the predicate's first word, plus, for every argument, the mean probability of the predicted tag
at the argument's ``B`` positions. ``confidence_mode="multi2oie"`` returns that sum (range
``[0, 1 + n_args]``, what Multi2OIE writes into CaRB files); ``"mean"`` divides it by ``1 + n_args`` so
it lies in ``[0, 1]`` (a per-tuple average that does not favour tuples with more arguments).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from ..registry import Registry
from .extraction import Extraction, span_text
from .labels import ARG_ROLES, OUTSIDE

ConfidenceMode = Literal["multi2oie", "mean"]
CONFIDENCE_MODES: tuple[str, ...] = ("multi2oie", "mean")
SpanStrategy = str
"""A name registered in :data:`SPAN_SELECTORS` (an open set: strategies can be registered)."""


class SpanSelector:
    """How one argument role's positions are chosen when the tagger gave it several spans.

    Subclasses set ``name`` and implement :meth:`select`; register them with :func:`register_span_strategy`.
    """

    name: ClassVar[str]

    def select(
        self, spans: list[list[int]], predicate: Sequence[int], probs: Sequence[float] | None
    ) -> list[int]:
        """Positions of the role.

        Args:
            spans (`list[list[int]]`): two or more contiguous spans of the role, in sentence order.
            predicate (`Sequence[int]`): predicate positions.
            probs (`Sequence[float]`, *optional*): per-word probability of the predicted tag.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _span_score(probs: Sequence[float] | None):
    return (lambda span: probs[span[0]]) if probs is not None else (lambda span: 0.0)


class MergeSpans(SpanSelector):
    """All spans joined (Multi2OIE's ``get_tuple``); restores discontinuous gold arguments exactly."""

    name = "merge"

    def select(self, spans, predicate, probs):
        return [p for span in spans for p in span]


class BestSpan(SpanSelector):
    """The span whose first word has the highest probability (Multi2OIE's ``get_max_prob_args``; the first
    span when no probabilities are given)."""

    name = "best"

    def select(self, spans, predicate, probs):
        return max(spans, key=_span_score(probs))


class NearestSpan(SpanSelector):
    """The span closest to the predicate (fewest words between them); ties go to the more probable span."""

    name = "nearest"

    def select(self, spans, predicate, probs):
        score = _span_score(probs)
        pred = sorted(predicate)

        def distance(span: list[int]) -> int:
            if not pred:
                return 0
            return min(abs(a - b) for a in (span[0], span[-1]) for b in (pred[0], pred[-1]))

        return min(spans, key=lambda span: (distance(span), -score(span)))


class MergeNearSpans(SpanSelector):
    """The most probable span plus every span within ``max_gap`` words of the pieces kept so far (predicate
    words are not counted in a gap): discontinuous arguments around the predicate survive, far pieces do not.

    Args:
        max_gap (`int`, *optional*, defaults to 2): the most words (other than the predicate's) between two
            merged pieces.
    """

    name = "merge_near"

    def __init__(self, max_gap: int = 2) -> None:
        if max_gap < 0:
            raise ValueError(f"`max_gap` must be >= 0, got {max_gap}.")
        self.max_gap = max_gap

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_gap={self.max_gap})"

    def select(self, spans, predicate, probs):
        pred = set(predicate)
        best = max(range(len(spans)), key=lambda i: _span_score(probs)(spans[i]))
        lo, hi = best, best  # kept spans are a contiguous run of `spans`

        def gap(a: list[int], b: list[int]) -> int:
            return sum(1 for p in range(a[-1] + 1, b[0]) if p not in pred)

        while True:
            if lo > 0 and gap(spans[lo - 1], spans[lo]) <= self.max_gap:
                lo -= 1
            elif hi < len(spans) - 1 and gap(spans[hi], spans[hi + 1]) <= self.max_gap:
                hi += 1
            else:
                break
        return [p for span in spans[lo : hi + 1] for p in span]


SPAN_SELECTORS: Registry[SpanSelector] = Registry("span strategy")
"""Registered span strategies by name (see :func:`register_span_strategy`): ``best``, ``merge``, ``merge_near``,
``nearest`` and any added."""

SPAN_STRATEGIES = SPAN_SELECTORS
"""The same registry, for membership tests and listing (``name in SPAN_STRATEGIES``, ``SPAN_STRATEGIES.names()``)."""


def register_span_strategy(selector: SpanSelector, *, overwrite: bool = False) -> SpanSelector:
    """Make ``selector`` available as ``span_strategy=selector.name``.

    Args:
        selector (`SpanSelector`): an instance of a :class:`SpanSelector` subclass.
        overwrite (`bool`, *optional*, defaults to `False`): replace a strategy of the same name.
    """
    if not isinstance(selector, SpanSelector):
        raise TypeError(f"`selector` must be a SpanSelector instance, got {type(selector).__name__}.")
    return SPAN_SELECTORS.register(getattr(selector, "name", None), selector, overwrite=overwrite)


for _selector in (MergeSpans(), BestSpan(), NearestSpan(), MergeNearSpans()):
    register_span_strategy(_selector)


def repair_bio(tags: Sequence[str]) -> list[str]:
    """Make a tag sequence well formed: an ``X-I`` that does not continue an ``X`` span starts one (``X-B``).

    Args:
        tags (`Sequence[str]`): tags such as ``"O"``, ``"P-B"``, ``"A1-I"``.
    """
    out: list[str] = []
    prev_role = None
    for tag in tags:
        if tag == OUTSIDE:
            prev_role = None
            out.append(tag)
            continue
        role, _, bio = tag.rpartition("-")
        if bio == "I" and prev_role != role:
            tag = f"{role}-B"
        prev_role = role
        out.append(tag)
    return out


def bio_spans(tags: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Contiguous spans ``(role, positions)`` of a (repaired) tag sequence, in order.

    Args:
        tags (`Sequence[str]`): word tags.
    """
    spans: list[tuple[str, list[int]]] = []
    for i, tag in enumerate(repair_bio(tags)):
        if tag == OUTSIDE:
            continue
        role, _, bio = tag.rpartition("-")
        if bio == "B":
            spans.append((role, [i]))
        else:
            spans[-1][1].append(i)
    return spans


def decode_predicates(tags: Sequence[str]) -> list[list[int]]:
    """Predicate spans (word positions) from sentence-level predicate tags."""
    return [positions for role, positions in bio_spans(tags) if role == "P"]


def decode_arguments(
    tags: Sequence[str],
    predicate: Sequence[int] = (),
    *,
    strategy: SpanStrategy = "merge",
    probs: Sequence[float] | None = None,
) -> dict[str, list[int]]:
    """Argument roles -> word positions for one predicate.

    Words of the predicate itself are forced to ``O`` first. When a role has several spans, the registered
    :class:`SpanSelector` named ``strategy`` chooses: ``"merge"`` joins them (as Multi2OIE's ``get_tuple``
    does; this also restores discontinuous gold arguments exactly), ``"best"`` keeps the span whose first word
    has the highest probability (Multi2OIE's ``get_max_prob_args``; the first span when ``probs`` is not
    given), ``"nearest"`` the span closest to the predicate, ``"merge_near"`` the best span and the spans
    within two words of it.

    Args:
        tags (`Sequence[str]`): argument tags of the sentence, conditioned on ``predicate``.
        predicate (`Sequence[int]`, *optional*): word positions of the predicate.
        strategy (`str`, *optional*, defaults to `"merge"`): a name in :data:`SPAN_SELECTORS`.
        probs (`Sequence[float]`, *optional*): per-word probability of the predicted tag.
    """
    if strategy not in SPAN_SELECTORS:
        raise ValueError(f"`strategy` must be one of {SPAN_SELECTORS.names()}, got {strategy!r}.")
    pred = set(predicate)
    cleaned = [OUTSIDE if i in pred else t for i, t in enumerate(tags)]
    spans: dict[str, list[list[int]]] = {}
    for role, positions in bio_spans(cleaned):
        spans.setdefault(role, []).append(positions)
    selector = SPAN_SELECTORS.get(strategy)
    return {
        role: group[0] if len(group) == 1 else selector.select(group, predicate, probs)
        for role, group in spans.items()
    }


def _begins(positions: Sequence[int]) -> list[int]:
    ps = sorted(positions)
    return [p for i, p in enumerate(ps) if i == 0 or ps[i - 1] != p - 1]


def confidence(
    predicate: Sequence[int],
    roles: dict[str, list[int]],
    pred_probs: Sequence[float] | None,
    arg_probs: Sequence[float] | None,
    mode: ConfidenceMode = "multi2oie",
) -> float:
    """Tuple confidence from per-word probabilities of the predicted tags (see module docstring).

    Args:
        predicate (`Sequence[int]`): predicate positions.
        roles (`dict[str, list[int]]`): argument role -> positions.
        pred_probs (`Sequence[float]`, *optional*): per-word probability of the predicted predicate tag.
        arg_probs (`Sequence[float]`, *optional*): per-word probability of the predicted argument tag.
        mode (`str`, *optional*, defaults to `"multi2oie"`): ``"multi2oie"`` (sum) or ``"mean"``.
    """
    if mode not in CONFIDENCE_MODES:
        raise ValueError(f"`confidence_mode` must be one of {CONFIDENCE_MODES}, got `{mode!r}`.")
    if pred_probs is None or arg_probs is None:
        return 1.0
    score = float(pred_probs[min(predicate)])
    for positions in roles.values():
        begins = _begins(positions)
        score += sum(float(arg_probs[b]) for b in begins) / len(begins)
    return score / (1 + len(roles)) if mode == "mean" else score


def build_extraction(
    sentence: str,
    offsets: Sequence[tuple[int, int]],
    predicate: Sequence[int],
    arg_tags: Sequence[str],
    *,
    pred_probs: Sequence[float] | None = None,
    arg_probs: Sequence[float] | None = None,
    confidence_mode: ConfidenceMode = "multi2oie",
    min_args: int = 1,
    span_strategy: SpanStrategy = "merge",
    language: str | None = None,
    sentence_index: int | None = None,
) -> Extraction | None:
    """Turn one predicate and its argument tags into an :class:`Extraction`.

    Argument roles are packed in order: ``A0`` is ``arg0``; ``A1``-``A3`` that are present become
    ``args`` in role order (a missing ``A1`` does not leave a hole).

    Args:
        sentence (`str`): the sentence.
        offsets (`Sequence[tuple[int, int]]`): character span of every word.
        predicate (`Sequence[int]`): predicate word positions.
        arg_tags (`Sequence[str]`): word-level argument tags for this predicate.
        pred_probs / arg_probs (`Sequence[float]`, *optional*): per-word probabilities of the predicted tags,
            used for the confidence; without them the confidence is 1.0.
        confidence_mode (`str`, *optional*, defaults to `"multi2oie"`): see :func:`confidence`.
        min_args (`int`, *optional*, defaults to 1): tuples with fewer arguments are dropped (``None``).
        span_strategy (`str`, *optional*, defaults to `"merge"`): several spans of one role, see
            :func:`decode_arguments`.
        language (`str`, *optional*): stored on the extraction.
        sentence_index (`int`, *optional*): stored on the extraction.
    """
    roles = decode_arguments(arg_tags, predicate, strategy=span_strategy, probs=arg_probs)
    if len(roles) < min_args:
        return None
    arg0_pos = roles.get("A0", [])
    args_pos = [roles[r] for r in ARG_ROLES[1:] if r in roles]
    return Extraction(
        sentence=sentence,
        relation=span_text(sentence, offsets, predicate),
        arg0=span_text(sentence, offsets, arg0_pos) if arg0_pos else "",
        args=[span_text(sentence, offsets, p) for p in args_pos],
        confidence=confidence(predicate, roles, pred_probs, arg_probs, confidence_mode),
        relation_pos=sorted(predicate),
        arg0_pos=sorted(arg0_pos),
        args_pos=[sorted(p) for p in args_pos],
        language=language,
        sentence_index=sentence_index,
    )
