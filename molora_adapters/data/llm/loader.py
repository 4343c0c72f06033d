"""The ``llm-augmented`` corpus loader and the ``openie4pp`` recipe (English + generated languages)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import datasets

from ..registry import load_training_corpus
from ..schema import OIE_FEATURES, records_to_dataset
from ..shards import MANIFEST, accepted_path, read_jsonl, read_manifest


def _as_dirs(path: str | Path | Iterable[str | Path] | None, what: str) -> list[Path]:
    if path is None:
        raise ValueError(f"`path` is required for {what}: pass the output directory of `molora annotate`.")
    dirs = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    for d in dirs:
        if not (d / MANIFEST).is_file():
            raise FileNotFoundError(
                f"{str(d)!r} is not an annotation output directory (no {MANIFEST}); "
                "run `molora annotate --out DIR` first."
            )
    return dirs


def _normalise(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    if not isinstance(row.get("meta"), str):
        import json

        row["meta"] = json.dumps(row.get("meta") or {}, ensure_ascii=False, sort_keys=True)
    return row


def accepted_files(directories: Iterable[Path]) -> list[Path]:
    """The accepted-record shard files of output directories, in shard order (a listed shard must exist)."""
    files = []
    for d in directories:
        for key in sorted(read_manifest(d)["shards"], key=int):
            file = accepted_path(d, int(key))
            if not file.is_file():
                raise FileNotFoundError(
                    f"{file} is listed in {d / MANIFEST} but missing; re-run the command."
                )
            files.append(file)
    return files


def load_record_files(files: Iterable[Path], languages: list[str] | None = None) -> datasets.Dataset:
    """Records of JSONL files as one dataset, de-duplicated by ``id`` (first wins), optionally by language."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for file in files:
        for row in read_jsonl(file):
            if row["id"] in seen or (languages and row["language"] not in languages):
                continue
            seen.add(row["id"])
            rows.append(_normalise(row))
    return records_to_dataset(rows)


def load_llm_augmented(
    path: str | Path | Iterable[str | Path] | None = None, languages: list[str] | None = None
) -> datasets.Dataset:
    """Load the accepted records of one or more ``molora annotate`` output directories.

    Records are de-duplicated by ``id`` (first wins) and returned in shard order.

    Args:
        path (`str`, `Path` or a list of them): output directories of ``molora annotate``.
        languages (`list[str]`, *optional*): keep only these language codes.
    """
    return load_record_files(accepted_files(_as_dirs(path, "the `llm-augmented` loader")), languages)


def build_openie4pp(
    english: datasets.Dataset, llm_dirs: list[str | Path] | str | Path, languages: list[str] | None = None
) -> datasets.Dataset:
    """OpenIE4++: the English corpus followed by the LLM-generated languages.

    Args:
        english (`datasets.Dataset`): English records in the OIE schema (e.g. the ``openie4`` corpus).
        llm_dirs (`list[str]`): output directories of ``molora annotate``.
        languages (`list[str]`, *optional*): keep only these generated languages.
    """
    generated = load_llm_augmented(llm_dirs, languages=languages)
    if english.features != OIE_FEATURES:
        english = english.cast(OIE_FEATURES)
    return datasets.concatenate_datasets([english, generated])


def load_openie4pp(
    path: str | Path | list[str | Path] | None = None,
    *,
    english: str = "openie4",
    english_path: str | None = None,
    languages: list[str] | None = None,
    **kwargs: Any,
) -> datasets.Dataset:
    """Registered as ``openie4pp``: ``load_training_corpus(english, english_path)`` + ``llm-augmented`` at ``path``.

    Args:
        path (`str` or `list[str]`): output directories of ``molora annotate``.
        english (`str`, *optional*, defaults to `"openie4"`): registered name of the English corpus.
        english_path (`str`, *optional*): path passed to the English loader.
        languages (`list[str]`, *optional*): keep only these generated languages.
        **kwargs: passed to the English loader.
    """
    eng = load_training_corpus(english, path=english_path, **kwargs)
    return build_openie4pp(eng, path, languages=languages)


# Registered lazily by `molora_adapters.data` (by import path), so that `data` does not import this package.
