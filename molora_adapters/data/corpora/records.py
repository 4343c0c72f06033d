"""Shared by every corpus format: aligning raw tuples to words and building the records."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import datasets

from ..alignment import AlignmentReport, find_span, is_char_level, split_into_spans, split_words
from ..schema import OIERecord, OIETuple, records_to_dataset

__all__ = ["EVAL_OVERLAP_PREFIXES", "MAX_EXTRA_ARGS", "RESOURCES", "align_tuple", "build_records"]

logger = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "oie_train"
"""Vendored corpora (package data, see its SOURCES.md)."""
MAX_EXTRA_ARGS = 3  # A1..A3 of the Multi2OIE tagger

# Sentences that are also in evaluation sets (see SOURCES.md): lower-cased alphanumerics only.
EVAL_OVERLAP_PREFIXES = ("planstoartificiallyoxygenateareasofthebaltic",)  # lsoie-g-1.0.tsv line 3536


def _key(sentence: str) -> str:
    return re.sub(r"[^0-9a-z]", "", sentence.lower())


def _vendored(name: str) -> Path:
    return RESOURCES / name


def _require_path(loader: str, path: str | None) -> str:
    if path is None:
        raise ValueError(
            f"The `{loader}` loader has no default file (only OIE2016 train, the IMoJIE subsets and LSOIE-g "
            "are shipped, see molora_adapters/resources/oie_train/SOURCES.md); pass `path=` to your copy."
        )
    return path


def _raw(relation: str, arg0: str, args: list[str], **kw: Any) -> dict[str, Any]:
    return {"relation": relation, "arg0": arg0, "args": args, **kw}


def align_tuple(
    words: list[str], raw: dict[str, Any], language: str | None = None
) -> tuple[OIETuple | None, str]:
    """Align one raw tuple (texts, optional positions) to ``words``.

    Args:
        words (`list[str]`): sentence words.
        raw (`dict`): ``relation``, ``arg0``, ``args`` texts; optional ``relation_pos``, ``arg0_pos``,
            ``args_pos`` (used as given, validated), ``confidence``, ``context``.
        language (`str`, *optional*): selects character-level span splitting for zh / ja.

    Returns:
        ``(tuple, "")`` or ``(None, reason)`` with a reason from :data:`DROP_REASONS`; ``(tuple, "split")``
        when an argument had to be split into several contiguous pieces. Argument texts of the returned
        tuple are re-spelled from the aligned words (so they always match the positions); the relation
        keeps its source text (OIE2016 relations such as "might boost" add words outside their positions).
        The subject is never split; further arguments may be.
    """
    n = len(words)

    def split(t: str) -> list[str]:
        return [w for w, _, _ in split_words(t, language)]

    def find(t: str, avoid: set[int]) -> list[int] | None:
        # a span ending mid-sentence ("Calif.") keeps the period its sentence keeps there
        span = split(t)
        pos = find_span(words, span, avoid=avoid)
        if pos is None and len(span) > 1 and span[-1] == "." and t.rstrip().endswith("."):
            pos = find_span(words, [*span[:-2], span[-2] + "."], avoid=avoid)
        return pos

    if not raw["relation"].strip():
        return None, "empty_relation"
    note = ""
    rel = raw.get("relation_pos")
    if rel is None:
        rel = find(raw["relation"], set())
        if rel is None:
            return None, "relation_not_found"
    used = set(rel)
    texts = [raw.get("arg0") or ""] + list(raw.get("args") or [])
    given = raw.get("args_pos")
    positions: list[list[int]] = []
    for k, text in enumerate(texts):
        if given is not None:
            pos = list(raw.get("arg0_pos") or []) if k == 0 else list(given[k - 1])
            if text.strip() and not pos:
                return None, "argument_not_found"
            positions.append(pos)
            continue
        if not text.strip():
            positions.append([])
            continue
        pos = find(text, used)
        if pos is not None:
            positions.append(pos)
        elif k == 0:  # the subject is never split
            return None, "argument_not_found"
        else:
            pieces = split_into_spans(words, split(text), avoid=used)
            if pieces is None:
                return None, "argument_not_found"
            positions.extend(pieces)
            note = "split"
        used.update(p for ps in positions for p in ps)
    if any(p < 0 or p >= n for ps in [rel, *positions] for p in ps):
        return None, "position_out_of_range"
    flat = [p for ps in [rel, *positions] for p in ps]
    if len(flat) != len(set(flat)):
        return None, "overlapping_spans"
    arg0_pos, args_pos = positions[0], [p for p in positions[1:] if p]
    if not arg0_pos and not args_pos:
        return None, "no_arguments"
    if len(args_pos) > MAX_EXTRA_ARGS:
        return None, "too_many_arguments"

    joiner = "" if is_char_level(language) else " "
    return (
        OIETuple(
            arg0=joiner.join(words[i] for i in arg0_pos),
            relation=raw["relation"],
            args=[joiner.join(words[i] for i in ps) for ps in args_pos],
            context=raw.get("context"),
            confidence=float(raw.get("confidence", 1.0)),
            arg0_pos=list(arg0_pos),
            relation_pos=list(rel),
            args_pos=[list(p) for p in args_pos],
        ),
        note,
    )


def build_records(
    items: Iterable[tuple[str, list[str] | None, list[dict[str, Any]], dict[str, Any]]],
    *,
    language: str,
    id_prefix: str,
    report: AlignmentReport | None = None,
    drop_eval_overlap: bool = True,
) -> datasets.Dataset:
    """Align raw sentences + tuples into records and a `datasets.Dataset`.

    Args:
        items (`Iterable`): ``(sentence, words or None, raw tuples, meta)``; words default to
            :func:`split_words` of the sentence.
        language (`str`): language code of the corpus.
        id_prefix (`str`): record ids are ``f"{id_prefix}-{i}"``.
        report (`AlignmentReport`, *optional*): filled with counts; a new one is made otherwise.
        drop_eval_overlap (`bool`, *optional*, defaults to `True`): drop sentences known to be in
            evaluation sets.
    """
    report = report if report is not None else AlignmentReport()
    records: list[OIERecord] = []
    for sentence, words, raws, meta in items:
        if drop_eval_overlap and _key(sentence).startswith(EVAL_OVERLAP_PREFIXES):
            report.tuples_in += len(raws)
            report.sentences_dropped += 1
            report.drop("eval_overlap", sentence, count=len(raws))
            continue
        words = words if words is not None else [w for w, _, _ in split_words(sentence, language)]
        report.sentences += 1
        kept, rejected, seen = [], [], set()
        for raw in raws:
            report.tuples_in += 1
            key = (
                raw.get("arg0") or "",
                raw["relation"],
                tuple(raw.get("args") or []),
                repr([raw.get(k) for k in ("arg0_pos", "relation_pos", "args_pos")]),
            )
            tup, reason = (None, "duplicate_tuple") if key in seen else align_tuple(words, raw, language)
            seen.add(key)
            if tup is None:
                summary = " ; ".join([key[0], key[1], *key[2]])  # arg0 ; relation ; args
                report.drop(reason, f"{summary}  <<  {sentence}")
                rejected.append({"reason": reason, "tuple": summary})
                continue
            report.split_arguments += reason == "split"
            report.tuples_kept += 1
            kept.append(tup)
        meta = dict(meta, rejected=rejected) if rejected else dict(meta)
        records.append(
            OIERecord(
                id=f"{id_prefix}-{len(records)}",
                sentence=sentence,
                words=list(words),
                language=language,
                extractions=kept,
                meta=meta,
            )
        )
    logger.info("Loaded %s: %s", id_prefix, report.summary())
    dataset = records_to_dataset(records)
    dataset.info.description = f"{id_prefix}: {report.summary()}"  # alignment counts travel with the data
    return dataset


def _group(rows: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, list[Any]]]:
    """Group ``(sentence, item)`` rows by sentence, keeping first-seen order."""
    groups: dict[str, list[Any]] = {}
    for sentence, item in rows:
        groups.setdefault(sentence, []).append(item)
    yield from groups.items()
