"""On-disk layout of an annotation run, written atomically.

::

    OUT_DIR/
      run.json                     settings that must not change between resumed runs
      manifest.json                one entry per finished shard (written after the shard's files)
      data/accepted-00000.jsonl    accepted records, one JSON object per line, OIE schema
      rejects/rejects-00000.jsonl  rejected (sentence, language) pairs with reason and raw answers
      cache.sqlite                 the answer cache (unless --cache points elsewhere)
      stats.json                   counts, tokens and cost of the whole run

Shard ``k`` always holds items ``[k * shard_size, (k + 1) * shard_size)`` of the deterministic item
list (source sentences in order, then languages), so a shard rewritten after a crash has the same
name and content: files are replaced, never appended, and the dataset can hold no duplicates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...utils.io import atomic_write_text, open_text

MANIFEST = "manifest.json"
RUN_FILE = "run.json"
STATS_FILE = "stats.json"


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=True) + "\n")


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file (gunzipped if its name ends in ``.gz``); a bad line raises a `ValueError` naming the file
    and line."""
    rows = []
    with open_text(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e}).") from None
    return rows


def accepted_path(out_dir: str | Path, shard: int) -> Path:
    return Path(out_dir) / "data" / f"accepted-{shard:05d}.jsonl"


def rejects_path(out_dir: str | Path, shard: int) -> Path:
    return Path(out_dir) / "rejects" / f"rejects-{shard:05d}.jsonl"


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """The manifest (``{"shards": {"00000": {...}}}``), empty if the run has not finished a shard yet."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return {"shards": {}}
    return json.loads(path.read_text(encoding="utf-8"))
