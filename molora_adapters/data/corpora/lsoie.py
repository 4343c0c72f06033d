"""LSOIE ``.oie`` files (``sentence<TAB>predicate<TAB>arg0<TAB>arg1...``, no positions)."""

from __future__ import annotations

from pathlib import Path

import datasets

from ...utils.io import open_text
from ..alignment import AlignmentReport
from ..registry import register_corpus_loader
from .records import _group, _raw, _require_path, build_records


@register_corpus_loader("lsoie")
def load_lsoie(path: str | None = None, *, report: AlignmentReport | None = None) -> datasets.Dataset:
    """LSOIE ``.oie`` files (``sentence<TAB>predicate<TAB>arg0<TAB>arg1...``, no positions).

    Args:
        path (`str`): the ``.oie`` file (required; LSOIE is not vendored).
        report (`AlignmentReport`, *optional*): receives the alignment counts.
    """
    p = Path(_require_path("lsoie", path))

    def rows():
        with open_text(p) as f:
            for lineno, line in enumerate(f, 1):
                parts = [c.strip() for c in line.rstrip("\n").split("\t")]
                if len(parts) >= 2:
                    yield parts[0], (lineno, _raw(parts[1], parts[2] if len(parts) > 2 else "", parts[3:]))

    def items():
        for sentence, group in _group(rows()):
            yield sentence, None, [t for _, t in group], {"source": p.name, "line": group[0][0]}

    return build_records(items(), language="en", id_prefix="lsoie", report=report)
