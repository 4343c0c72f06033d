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
from ..llm.loader import accepted_files, load_llm_augmented, load_record_files
from ..shards import MANIFEST, read_jsonl

__all__ = ["VENDORED_PROJECTED", "export_projected", "leaked_source_ids", "load_projected"]

VENDORED_PROJECTED = (
    Path(__file__).resolve().parents[2] / "resources" / "oie_train" / "projected_xquad.jsonl.gz"
)


def leaked_source_ids(directories: Iterable[str | Path]) -> set[str]:
    """English source sentences (``meta.source_id``) that a pair in any language rejected as ``eval_overlap``.

    A translation that collides with an evaluation sentence makes its English original a test sentence's original,
    so the other languages' translations of it are translations of a test sentence too: they must not train.
    """
    ids: set[str] = set()
    for d in [Path(p) for p in directories]:
        for file in sorted((d / "rejects").glob("*.jsonl")):
            for row in read_jsonl(file):
                if row.get("reason") == "eval_overlap" and _source_id(row):
                    ids.add(_source_id(row))
    return ids


def _source_id(row: dict[str, Any]) -> str | None:
    meta = row.get("meta") or {}
    meta = json.loads(meta) if isinstance(meta, str) else meta
    return meta.get("source_id")


def _is_records_file(path: Path) -> bool:
    return path.is_file() and (path.name.endswith(".jsonl") or path.name.endswith(".jsonl.gz"))


def load_projected(
    path: str | Path | Iterable[str | Path] | None = None, languages: list[str] | None = None
) -> datasets.Dataset:
    """Registered as ``projected``: projected multilingual OIE records.

    Args:
        path (`str`, `Path` or a list of them, *optional*): output directories of ``molora project`` (less the
            translations of sentences that collided with an evaluation sentence in any language, see
            :func:`leaked_source_ids`), or JSONL files of its records (``.jsonl`` / ``.jsonl.gz``, as written by :func:`export_projected`). Defaults
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
        ds = load_llm_augmented(paths, languages=languages)
        leaked = leaked_source_ids(paths)
        return ds.filter(lambda row: _source_id(row) not in leaked) if leaked else ds
    if len(files) != len(paths):
        raise ValueError(
            f"`path` mixes record files and output directories ({[str(p) for p in paths]}); pass one kind."
        )
    return load_record_files(files, languages)


def export_projected(directories: Iterable[str | Path], out: str | Path) -> int:
    """Write the accepted records of ``molora project`` output directories to one JSONL(.gz) file, atomically.

    Records keep their ``meta`` (provenance) and shard order; ids already written are skipped, and so are
    translations of an English sentence that another language's pair rejected as ``eval_overlap``
    (:func:`leaked_source_ids`). A ``.gz`` name is gzipped with a fixed timestamp, so the same records give the
    same bytes.

    Returns:
        `int`: the number of records written.
    """
    directories = [Path(p) for p in directories]
    for d in directories:
        if not (d / MANIFEST).is_file():
            raise FileNotFoundError(f"{str(d)!r} is not a `molora project` output directory (no {MANIFEST}).")
    leaked = leaked_source_ids(directories)
    lines, seen = [], set()
    for row in (r for file in accepted_files(directories) for r in read_jsonl(file)):
        if row["id"] not in seen and _source_id(row) not in leaked:
            seen.add(row["id"])
            lines.append(json.dumps(row, ensure_ascii=False, sort_keys=True))
    data = ("\n".join(lines) + "\n" if lines else "").encode("utf-8")
    out = Path(out)
    if out.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    atomic_write_bytes(out, data)
    return len(lines)
