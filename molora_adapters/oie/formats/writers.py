"""The one writer module for OIE extractions: CaRB tabbed, BenchIE explicit and our JSONL.

Every format has one name; ``carb`` is accepted as an alias of ``tabbed`` (see :data:`FORMAT_ALIASES`).
Each writer round-trips through the matching reader in :mod:`.readers`, and all of them share one field
cleaning (tabs and line breaks become spaces) and one confidence encoding (``repr`` of the float, so it
reads back exactly).

Two entry points write the same formats:

* :func:`write_tabbed`, :func:`write_benchie`, :func:`write_jsonl` write in-memory extractions (anything
  :func:`~.readers.rows_from_extractions` accepts) to a file, atomically;
* :func:`write_results` streams the per-input-line :class:`LineResult` of ``molora extract``. In JSONL a
  line gives one object ``{"line", "sentence", "language", "extractions": [...]}``, or ``{"line", "error"}``
  for a line that could not be processed (nothing is lost silently; :func:`~.readers.read_jsonl` skips
  those records). In the tab formats an error line writes nothing and the BenchIE sentence id is the
  1-based input line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from ...utils.io import atomic_write_text
from .readers import FORMAT_ALIASES, resolve_format, rows_from_extractions
from .rows import ExtractionRow, normalize_key

if TYPE_CHECKING:
    from ..extraction import Extraction

__all__ = [
    "FORMAT_ALIASES",
    "OUTPUT_FORMATS",
    "LineResult",
    "format_benchie",
    "format_jsonl",
    "format_tabbed",
    "write_benchie",
    "write_jsonl",
    "write_results",
    "write_tabbed",
]

OUTPUT_FORMATS: tuple[str, ...] = ("jsonl", "tabbed", "benchie")
"""Formats the writers produce (``openie4`` is read-only); aliases in :data:`FORMAT_ALIASES` also work."""


def _clean(text: str) -> str:
    """Tabs and line breaks would break the line formats: replace them with spaces."""
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _tabbed_line(r: ExtractionRow) -> str:
    return "\t".join(_clean(f) for f in (r.sentence, repr(float(r.confidence)), r.relation, *r.args))


def _benchie_line(r: ExtractionRow, sid: str) -> str:
    subj = r.args[0] if r.args else ""
    return "\t".join(_clean(f) for f in (sid, subj, r.relation, " ".join(r.args[1:])))


def format_tabbed(predictions: Any) -> str:
    """CaRB tabbed lines ``sentence<TAB>confidence<TAB>relation<TAB>arg0<TAB>arg1...``."""
    return "".join(_tabbed_line(r) + "\n" for r in rows_from_extractions(predictions))


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
        lines.append(_benchie_line(r, str(sid)))
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


def _row_dict(r: ExtractionRow) -> dict[str, Any]:
    return ({"arg0": r.args[0]} if r.args else {}) | {
        "relation": r.relation,
        "args": list(r.args[1:]),
        "confidence": float(r.confidence),
    }


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
        rec["extractions"] = [_row_dict(r) for r in group]
        lines.append(json.dumps(rec, ensure_ascii=False))
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(rows)


# --- per input line (``molora extract``) ---------------------------------------------------------


@dataclass
class LineResult:
    """The outcome for one input line: its extractions, or an error message.

    Args:
        line (`int`): 1-based line number in the input.
        sentence (`str`, *optional*): the decoded line (``None`` when it could not be decoded).
        language (`str`, *optional*): language code used.
        extractions (`list[Extraction]`, *optional*): the tuples.
        error (`str`, *optional*): why the line produced no result.
    """

    line: int
    sentence: str | None = None
    language: str | None = None
    extractions: list[Extraction] = field(default_factory=list)
    error: str | None = None

    def rows(self) -> list[ExtractionRow]:
        """The extractions as rows (sentence id: the line number)."""
        return [
            ExtractionRow(e.sentence, e.relation, tuple(e.arguments), float(e.confidence), str(self.line))
            for e in self.extractions
        ]


def format_jsonl(result: LineResult) -> str:
    """The JSONL object of one input line (extractions keep their word positions)."""
    if result.error is not None:
        return json.dumps({"line": result.line, "error": result.error}, ensure_ascii=False)
    exts = []
    for e in result.extractions:
        d = e.to_dict()
        for key in ("sentence", "sentence_index", "language"):
            d.pop(key)
        d["confidence"] = float(d["confidence"])
        exts.append(d)
    return json.dumps(
        {"line": result.line, "sentence": result.sentence, "language": result.language, "extractions": exts},
        ensure_ascii=False,
    )


def write_results(results: Iterable[LineResult], stream: TextIO, fmt: str = "jsonl") -> int:
    """Write ``results`` to ``stream`` in ``fmt``; returns the number of lines written.

    In the tab formats, lines with errors write nothing (the CLI reports them on stderr).

    Args:
        results (`Iterable[LineResult]`): per-line results.
        stream (`TextIO`): where to write.
        fmt (`str`, *optional*, defaults to `"jsonl"`): one of :data:`OUTPUT_FORMATS` or an alias.
    """
    name = resolve_format(fmt, what="fmt")
    if name not in OUTPUT_FORMATS:
        raise ValueError(
            f"`fmt` must be one of {OUTPUT_FORMATS} (or an alias {FORMAT_ALIASES}), got {fmt!r}."
        )
    n = 0
    for r in results:
        if name == "jsonl":
            lines = [format_jsonl(r)]
        elif r.error is not None:
            continue
        elif name == "tabbed":
            lines = [_tabbed_line(row) for row in r.rows()]
        else:
            lines = [_benchie_line(row, row.sent_id or "") for row in r.rows()]
        for line in lines:
            stream.write(line + "\n")
            n += 1
    return n
