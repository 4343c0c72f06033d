"""OpenIE4 output as in the AI2 TupleInf markdown dump."""

from __future__ import annotations

import html
import re
from pathlib import Path

import datasets

from ...utils.io import open_text
from ..alignment import AlignmentReport
from ..registry import register_corpus_loader
from .records import _raw, _require_path, build_records

# --- OpenIE4 (TupleInf dump) ---------------------------------------------------------------------

_TOKEN = re.compile(r"\w+(?:[-'.,]\w+)*|[^\w\s]", re.UNICODE)
_ROW = re.compile(r"^\|\s*([0-9.]+)\s*\|\s*\((.*)\)\s*\|\s*$")


def _tokenize_raw(text: str) -> list[str]:
    return _TOKEN.findall(html.unescape(text))


@register_corpus_loader("openie4")
def load_openie4(
    path: str | None = None, *, report: AlignmentReport | None = None, limit: int | None = None
) -> datasets.Dataset:
    """OpenIE4 extractions as in the AI2 TupleInf markdown dump (``> sentence`` then ``| conf | (a; r; b) |``).

    Raw web text is un-escaped and split into words and punctuation; ``L:`` / ``T:`` prefixes are removed
    and those arguments kept as further arguments; ``Context(...)`` is stored in ``context``.

    Args:
        path (`str`): a ``.md`` page or a directory of them (required: the dump's licence is unknown, so it
            is never vendored).
        report (`AlignmentReport`, *optional*): receives the alignment counts.
        limit (`int`, *optional*): stop after this many sentences.
    """
    root = Path(_require_path("openie4", path))
    files = sorted(root.glob("*.md")) if root.is_dir() else [root]

    def items():
        count = 0
        for fp in files:
            sentence, raws, lineno0 = None, [], 0
            with open_text(fp) as f:
                lines = list(enumerate(f, 1))
            for lineno, line in lines + [(len(lines) + 1, "> ")]:
                if line.startswith("> "):
                    if sentence and raws:
                        yield (
                            " ".join(_tokenize_raw(sentence)),
                            _tokenize_raw(sentence),
                            raws,
                            {"source": fp.name, "line": lineno0},
                        )
                        count += 1
                        if limit is not None and count >= limit:
                            return
                    sentence, raws, lineno0 = line[2:].strip(), [], lineno
                    continue
                m = _ROW.match(line.strip())
                if m and sentence:
                    parts = [p.strip() for p in m.group(2).split(";")]
                    if len(parts) < 2:
                        continue
                    context = None
                    if parts[0].startswith("Context(") and ")" in parts[0]:
                        context = parts[0][8 : parts[0].index(")")]
                    parts = [re.sub(r"^[LT]:", "", x).strip() for x in parts]
                    raws.append(
                        _raw(
                            " ".join(_tokenize_raw(parts[1])),
                            " ".join(_tokenize_raw(parts[0])),
                            [" ".join(_tokenize_raw(x)) for x in parts[2:] if x],
                            confidence=float(m.group(1)),
                            context=context,
                        )
                    )

    return build_records(items(), language="en", id_prefix="openie4", report=report)
