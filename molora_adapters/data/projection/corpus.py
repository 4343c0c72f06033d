"""The ``projected`` corpus: accepted records of ``molora project`` runs, or the vendored XQuAD projection.

The vendored file, ``resources/oie_train/projected_xquad.jsonl.gz``, holds the accepted records of one
``molora project --source xquad`` run (silver English tuples from a model trained by this project, projected onto
the XQuAD translations; CC BY-SA 4.0 like XQuAD, see ``resources/oie_train/SOURCES.md``). It is what
``load_training_corpus("projected")`` returns without a ``path``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import datasets

from ...utils.io import atomic_write_bytes
from ..llm.loader import _normalise, load_llm_augmented
from ..llm.shards import MANIFEST, accepted_path, read_jsonl, read_manifest
from ..schema import records_to_dataset

__all__ = ["VENDORED_PROJECTED", "export_projected", "load_projected"]

VENDORED_PROJECTED = (
    Path(__file__).resolve().parents[2] / "resources" / "oie_train" / "projected_xquad.jsonl.gz"
)


def _is_records_file(path: Path) -> bool:
    return path.is_file() and (path.name.endswith(".jsonl") or path.name.endswith(".jsonl.gz"))


def load_projected(
    path: str | Path | Iterable[str | Path] | None = None, languages: list[str] | None = None
) -> datasets.Dataset:
    """Registered as ``projected``: projected multilingual OIE records.

    Args:
        path (`str`, `Path` or a list of them, *optional*): output directories of ``molora project``, or JSONL
            files of its records (``.jsonl`` / ``.jsonl.gz``, as written by :func:`export_projected`). Defaults
            to the vendored XQuAD projection (:data:`VENDORED_PROJECTED`).
        languages (`list[str]`, *optional*): keep only these language codes.
    """
    if path is None:
        path = VENDORED_PROJECTED
        if not path.is_file():
            raise FileNotFoundError(
                f"the vendored projected corpus {str(path)!r} is missing (a broken install?); pass `path`, the "
                "output directory of `molora project`."
            )
    paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    files = [p for p in paths if _is_records_file(p)]
    if not files:
        return load_llm_augmented(paths, languages=languages)
    if len(files) != len(paths):
        raise ValueError(
            f"`path` mixes record files and output directories ({[str(p) for p in paths]}); pass one kind."
        )
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for file in files:
        for row in read_jsonl(file):
            if row["id"] in seen or (languages and row["language"] not in languages):
                continue
            seen.add(row["id"])
            rows.append(_normalise(row))
    return records_to_dataset(rows)


def export_projected(directories: Iterable[str | Path], out: str | Path) -> int:
    """Write the accepted records of ``molora project`` output directories to one JSONL(.gz) file, atomically.

    Records keep their ``meta`` (provenance) and shard order; ids already written are skipped. A ``.gz`` name is
    gzipped with a fixed timestamp, so the same records give the same bytes.

    Returns:
        `int`: the number of records written.
    """
    lines, seen = [], set()
    for d in [Path(p) for p in directories]:
        if not (d / MANIFEST).is_file():
            raise FileNotFoundError(f"{str(d)!r} is not a `molora project` output directory (no {MANIFEST}).")
        for key in sorted(read_manifest(d)["shards"], key=int):
            for row in read_jsonl(accepted_path(d, int(key))):
                if row["id"] not in seen:
                    seen.add(row["id"])
                    lines.append(json.dumps(row, ensure_ascii=False, sort_keys=True))
    data = ("\n".join(lines) + "\n" if lines else "").encode("utf-8")
    out = Path(out)
    if out.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    atomic_write_bytes(out, data)
    return len(lines)
