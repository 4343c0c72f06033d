"""OIE2016 ``train.oie`` and ``.oie.conll`` (Stanovsky & Dagan, 2016)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from ...utils.io import open_text
from ..alignment import AlignmentReport
from ..registry import register_corpus_loader
from .records import _group, _raw, _vendored, build_records


def _oie2016_rows(path: Path) -> Iterator[tuple[str, Any]]:
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2:
                continue
            try:
                rel, *args = (ast.literal_eval(p) for p in parts[1:])
            except (ValueError, SyntaxError) as e:
                raise ValueError(f"{path}:{lineno}: cannot parse OIE2016 tuple ({e}).") from None
            yield parts[0], (lineno, rel, args)


def _oie2016_conll_rows(path: Path) -> Iterator[tuple[str, Any]]:
    runs: dict[tuple[str, str], list[list[str]]] = {}
    with open_text(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        col = {name: i for i, name in enumerate(header)}
        for line in f:
            cells = line.rstrip("\n").split("\t")
            if len(cells) == len(header):
                runs.setdefault((cells[col["sent_id"]], cells[col["run_id"]]), []).append(cells)
    for (sent_id, run_id), rows in runs.items():
        words = [r[col["word"]] for r in rows]
        spans: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            label = r[col["label"]]
            if label != "O":
                spans.setdefault(label.split("-")[0], []).append(i)
        rel = ("", spans.get("P", []))
        rel = (" ".join(words[i] for i in rel[1]), rel[1])
        args = [(" ".join(words[i] for i in spans[k]), spans[k]) for k in sorted(spans) if k.startswith("A")]
        yield " ".join(words), (f"{sent_id}/{run_id}", rel, args)


@register_corpus_loader("oie2016")
def load_oie2016(path: str | None = None, *, report: AlignmentReport | None = None) -> datasets.Dataset:
    """OIE2016 train split (Stanovsky & Dagan, 2016): ``train.oie`` or an ``.oie.conll`` BIO table.

    The first argument of a tuple is ``arg0``. Positions come from the file; words are the sentence split
    on single spaces. Never train on the OIE2016 *dev* split: it is CaRB dev.

    Args:
        path (`str`, *optional*): a ``.oie`` / ``.oie.conll`` file (``.gz`` allowed); defaults to the
            vendored train split.
        report (`AlignmentReport`, *optional*): receives the alignment counts.
    """
    p = Path(path) if path is not None else _vendored("oie2016_train.oie.gz")
    rows = _oie2016_conll_rows(p) if ".conll" in p.name else _oie2016_rows(p)

    def items():
        for sentence, tuples in _group(rows):
            raws = []
            for _, rel, args in tuples:
                arg0 = args[0] if args else ("", [])
                rest = args[1:]
                raws.append(
                    _raw(
                        rel[0],
                        arg0[0],
                        [a[0] for a in rest],
                        relation_pos=list(rel[1]),
                        arg0_pos=list(arg0[1]),
                        args_pos=[list(a[1]) for a in rest],
                    )
                )
            yield sentence, sentence.split(" "), raws, {"source": p.name, "line": tuples[0][0]}

    return build_records(items(), language="en", id_prefix="oie2016", report=report)
