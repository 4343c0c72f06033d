"""CycleOIE's T5 text format: the IMoJIE subsets and GPT-annotated LSOIE (``lsoie-g-1.0.tsv``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from ...utils.io import open_text
from ..alignment import AlignmentReport
from ..registry import register_corpus_loader
from .records import _group, _raw, _vendored, build_records


def parse_t5_target(target: str) -> list[dict[str, Any]]:
    """Parse ``subject <is> A <and> relation <is> R <and> object <is> B <then> ...`` into raw tuples."""
    tuples = []
    for chunk in target.split("<then>"):
        fields: dict[str, str] = {}
        for part in chunk.split("<and>"):
            key, sep, value = part.partition("<is>")
            if sep:
                fields[key.strip()] = value.strip()
        if fields:
            obj = fields.get("object", "")
            tuples.append(_raw(fields.get("relation", ""), fields.get("subject", ""), [obj] if obj else []))
    return tuples


def _t5_items(paths: list[Path]) -> Iterator[tuple[str, None, list[dict[str, Any]], dict[str, Any]]]:
    rows = []
    for p in paths:
        with open_text(p) as f:
            for lineno, line in enumerate(f, 1):
                source, sep, target = line.rstrip("\n").partition("\t")
                if not sep or (lineno == 1 and source == "source"):
                    continue
                rows.append((source.strip(), (p.name, lineno, parse_t5_target(target))))
    for sentence, group in _group(rows):
        raws = [t for _, _, tuples in group for t in tuples]  # duplicates are counted by build_records
        yield sentence, None, raws, {"source": group[0][0], "line": group[0][1]}


@register_corpus_loader("imojie")
def load_imojie(
    path: str | list[str] | None = None, *, report: AlignmentReport | None = None
) -> datasets.Dataset:
    """IMoJIE bootstrapped data in CycleOIE's T5 format; objects with appended extra arguments are split
    into several arguments. Sentences repeated across subsets are merged; repeated tuples are dropped
    (counted as ``duplicate_tuple``).

    Args:
        path (`str` or `list[str]`, *optional*): file(s); defaults to the three vendored subsets.
        report (`AlignmentReport`, *optional*): receives the alignment counts.
    """
    if path is None:
        paths = [_vendored(f"imojie_{n}_4cr_qpbo_extractions_t5.tsv.gz") for n in (825, 2147, 4586)]
    else:
        paths = [Path(p) for p in ([path] if isinstance(path, str | Path) else path)]
    return build_records(_t5_items(paths), language="en", id_prefix="imojie", report=report)


@register_corpus_loader("lsoie-gpt")
def load_lsoie_gpt(path: str | None = None, *, report: AlignmentReport | None = None) -> datasets.Dataset:
    """GPT-annotated LSOIE (CycleOIE ``lsoie-g-1.0.tsv``); the sentence also in CaRB dev is dropped.

    Args:
        path (`str`, *optional*): the ``.tsv`` file; defaults to the vendored copy.
        report (`AlignmentReport`, *optional*): receives the alignment counts.
    """
    p = Path(path) if path is not None else _vendored("lsoie-g-1.0.tsv.gz")
    return build_records(_t5_items([p]), language="en", id_prefix="lsoie-gpt", report=report)
