"""One sharded, resumable run on disk, shared by ``molora annotate`` (:mod:`molora_adapters.data.llm.pipeline`) and
``molora project`` (:mod:`molora_adapters.data.projection.pipeline`); every file is written atomically.

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

A run holds :func:`run_lock` (one writer per directory), checks :func:`check_run_file` (a resumed run must use
the same settings), walks :func:`plan_shards` and skips every shard :func:`finished_shard` reports, and records each
new shard with :func:`write_shard` (data first, manifest entry last).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from ..utils.io import atomic_write_text, file_lock, open_text

T = TypeVar("T")

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


def format_counts(counts: dict[str, int]) -> str:
    """``"a=1, b=2"`` in key order, or ``"none"`` (the summaries of both runs)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"


def ids_hash(ids: Sequence[str]) -> str:
    """SHA-256 of the item ids of one shard (a resumed run reuses a shard only when its items are the same)."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


@contextlib.contextmanager
def run_lock(out_dir: str | Path, command: str) -> Iterator[None]:
    """An exclusive lock on ``OUT_DIR/.lock``: two runs must not write one directory at once.

    Args:
        out_dir (`str` or `Path`): the run's directory.
        command (`str`): the command named in the error, e.g. ``"molora annotate"``.

    Raises:
        RuntimeError: another process holds the lock.
    """
    with file_lock(Path(out_dir) / ".lock", blocking=False) as held:
        if not held:
            raise RuntimeError(f"Another `{command}` run is writing {str(out_dir)!r}.")
        yield


def check_run_file(out_dir: str | Path, settings: dict[str, Any], ignore: Sequence[str] = ("limit",)) -> None:
    """Record ``settings`` in ``run.json``, or check them against the recorded ones when resuming.

    Args:
        out_dir (`str` or `Path`): the run's directory.
        settings (`dict`): JSON-serialisable settings that must not change between resumed runs.
        ignore (`Sequence[str]`, *optional*, defaults to `("limit",)`): keys allowed to change (a larger
            ``limit`` extends a run).

    Raises:
        ValueError: the directory holds a run with other settings.
    """
    path = Path(out_dir) / RUN_FILE
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = sorted(k for k in settings if k not in ignore and old.get(k) != settings[k])
        if diff:
            raise ValueError(
                f"{str(out_dir)!r} holds a run with different settings ({', '.join(diff)}: "
                f"{ {k: old.get(k) for k in diff} } != { {k: settings[k] for k in diff} }); "
                "use another `--out` directory to keep both."
            )
    write_json(path, settings)


class Shard(NamedTuple):
    """One shard of a run's deterministic item list."""

    index: int
    items: list  # the shard's items, in order
    ids_sha256: str  # :func:`ids_hash` of their ids


def plan_shards(items: Sequence[T], shard_size: int, item_id: Callable[[T], str]) -> list[Shard]:
    """Cut ``items`` into shards of ``shard_size`` (shard ``k``: items ``[k * size, (k + 1) * size)``)."""
    out = []
    for index, start in enumerate(range(0, len(items), shard_size)):
        chunk = list(items[start : start + shard_size])
        out.append(Shard(index, chunk, ids_hash([item_id(x) for x in chunk])))
    return out


def finished_shard(out_dir: str | Path, shard: Shard) -> dict[str, Any] | None:
    """The manifest entry of ``shard`` when it is complete and holds the same items; else `None`."""
    entry = read_manifest(out_dir)["shards"].get(f"{shard.index:05d}")
    if entry and entry["complete"] and entry["ids_sha256"] == shard.ids_sha256:
        return entry
    return None


def write_shard(
    out_dir: str | Path, shard: Shard, accepted: list[dict], rejects: list[dict], **entry: Any
) -> None:
    """Write a shard's accepted and rejected records, then its manifest entry (``ids_sha256`` plus ``entry``:
    ``items``, ``counts``, ``complete`` and any run-specific counts)."""
    write_jsonl(accepted_path(out_dir, shard.index), accepted)
    write_jsonl(rejects_path(out_dir, shard.index), rejects)
    manifest = read_manifest(out_dir)
    manifest["shards"][f"{shard.index:05d}"] = {"ids_sha256": shard.ids_sha256, **entry}
    write_json(Path(out_dir) / MANIFEST, manifest)
