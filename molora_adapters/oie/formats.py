"""Writers for extraction results: JSONL (ours), the CaRB tab format and the BenchIE explicit format.

* **jsonl**: one object per *input line*: ``{"line", "sentence", "language", "extractions": [...]}`` or
  ``{"line", "error"}`` for a line that could not be processed (nothing is lost silently).
* **carb**: one line per extraction, ``sentence<TAB>confidence<TAB>relation<TAB>arg0<TAB>arg1...`` (the
  format read by the CaRB scorer and written by Multi2OIE).
* **benchie**: one line per extraction, ``sentence_id<TAB>arg0<TAB>relation<TAB>objects`` with the
  1-based input line as id and all further arguments joined by a space into the object (BenchIE scores
  triples; this is how Multi2OIE's BenchIE outputs were made).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, TextIO

from .extraction import Extraction

OutputFormat = Literal["jsonl", "carb", "benchie"]
OUTPUT_FORMATS: tuple[str, ...] = ("jsonl", "carb", "benchie")


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


def _clean(text: str) -> str:
    """Tabs and newlines inside a field would break the tab formats."""
    return " ".join(text.split())


def format_jsonl(result: LineResult) -> str:
    if result.error is not None:
        return json.dumps({"line": result.line, "error": result.error}, ensure_ascii=False)
    exts = []
    for e in result.extractions:
        d = e.to_dict()
        d.pop("sentence")
        d.pop("sentence_index")
        d.pop("language")
        d["confidence"] = round(float(d["confidence"]), 6)
        exts.append(d)
    return json.dumps(
        {"line": result.line, "sentence": result.sentence, "language": result.language, "extractions": exts},
        ensure_ascii=False,
    )


def format_carb(result: LineResult) -> list[str]:
    return [
        "\t".join([_clean(e.sentence), f"{e.confidence:.6f}", _clean(e.relation), *map(_clean, e.arguments)])
        for e in result.extractions
    ]


def format_benchie(result: LineResult) -> list[str]:
    return [
        "\t".join([str(result.line), _clean(e.arg0), _clean(e.relation), _clean(" ".join(e.args))])
        for e in result.extractions
    ]


def write_results(results: Iterable[LineResult], stream: TextIO, fmt: OutputFormat = "jsonl") -> int:
    """Write ``results`` to ``stream`` in ``fmt``; returns the number of lines written.

    In the tab formats, lines with errors write nothing (the CLI reports them on stderr).

    Args:
        results (`Iterable[LineResult]`): per-line results.
        stream (`TextIO`): where to write.
        fmt (`str`, *optional*, defaults to `"jsonl"`): one of :data:`OUTPUT_FORMATS`.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"`fmt` must be one of {OUTPUT_FORMATS}, got {fmt!r}.")
    n = 0
    for r in results:
        if fmt == "jsonl":
            lines = [format_jsonl(r)]
        elif r.error is not None:
            continue
        else:
            lines = format_carb(r) if fmt == "carb" else format_benchie(r)
        for line in lines:
            stream.write(line + "\n")
            n += 1
    return n
