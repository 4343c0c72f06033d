"""Writers for in-memory extractions: CaRB tabbed, BenchIE explicit and our JSONL (atomic writes).

All writers accept what :func:`~.readers.rows_from_extractions` accepts, and each round-trips through
the matching reader.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from ...utils.io import atomic_write_text
from .readers import rows_from_extractions
from .rows import ExtractionRow, normalize_key


def _clean(text: str) -> str:
    """Tabs and newlines would break the line formats: replace them with spaces."""
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def format_tabbed(predictions: Any) -> str:
    """CaRB tabbed lines ``sentence<TAB>confidence<TAB>relation<TAB>arg0<TAB>arg1...`` (confidence written
    with ``repr`` so it reads back exactly)."""
    lines = []
    for r in rows_from_extractions(predictions):
        fields = [r.sentence, repr(float(r.confidence)), r.relation, *r.args]
        lines.append("\t".join(_clean(f) for f in fields))
    return "".join(line + "\n" for line in lines)


def write_tabbed(path: str | os.PathLike, predictions: Any) -> int:
    """Write predictions in CaRB tabbed format; returns the number of rows.

    Args:
        path (`str` or `os.PathLike`): output file (written atomically).
        predictions: extractions in any shape :func:`~.readers.rows_from_extractions` accepts.
    """
    text = format_tabbed(predictions)
    atomic_write_text(path, text)
    return text.count("\n")


def format_benchie(predictions: Any, sent_ids: Mapping[str, str] | None = None) -> str:
    """BenchIE explicit lines ``sent_id<TAB>subject<TAB>relation<TAB>object``; arguments after the first
    are joined into the object. The id is the row's ``sent_id``, else ``sent_ids[sentence]`` (looked up by
    normalised sentence key too), else the 1-based index of the sentence in order of appearance."""
    by_key = {normalize_key(k): v for k, v in (sent_ids or {}).items()}
    order: dict[str, str] = {}
    lines = []
    for r in rows_from_extractions(predictions):
        sid = r.sent_id
        if sid is None and sent_ids is not None:
            sid = sent_ids.get(r.sentence, by_key.get(normalize_key(r.sentence)))
        if sid is None:
            sid = order.setdefault(r.sentence, str(len(order) + 1))
        subj = r.args[0] if r.args else ""
        obj = " ".join(r.args[1:])
        lines.append("\t".join(_clean(f) for f in (str(sid), subj, r.relation, obj)))
    return "".join(line + "\n" for line in lines)


def write_benchie(
    path: str | os.PathLike, predictions: Any, sent_ids: Mapping[str, str] | None = None
) -> int:
    """Write predictions in BenchIE explicit format; returns the number of rows.

    Args:
        path (`str` or `os.PathLike`): output file (written atomically).
        predictions: extractions in any shape :func:`~.readers.rows_from_extractions` accepts.
        sent_ids (`Mapping[str, str]`, *optional*): sentence -> BenchIE sentence id (e.g. from
            ``load_benchmark("benchie", lang)``: ``dict(zip(ds["sentence"], json meta sent_id))``).
    """
    text = format_benchie(predictions, sent_ids)
    atomic_write_text(path, text)
    return text.count("\n")


def write_jsonl(path: str | os.PathLike, predictions: Any) -> int:
    """Write one JSON record per sentence ``{"sentence", "extractions": [{"arg0", "relation", "args",
    "confidence"}]}`` (plus ``sent_id`` when known); returns the number of rows.

    Args:
        path (`str` or `os.PathLike`): output file (written atomically).
        predictions: extractions in any shape :func:`~.readers.rows_from_extractions` accepts.
    """
    records: dict[tuple[str, str | None], list[ExtractionRow]] = {}
    rows = rows_from_extractions(predictions)
    for r in rows:
        records.setdefault((r.sentence, r.sent_id), []).append(r)
    lines = []
    for (sentence, sid), group in records.items():
        rec: dict[str, Any] = {"sentence": sentence}
        if sid is not None:
            rec["sent_id"] = sid
        rec["extractions"] = [
            ({"arg0": r.args[0]} if r.args else {})
            | {"relation": r.relation, "args": list(r.args[1:]), "confidence": float(r.confidence)}
            for r in group
        ]
        lines.append(json.dumps(rec, ensure_ascii=False))
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(rows)
