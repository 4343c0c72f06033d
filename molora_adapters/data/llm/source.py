"""Reading the English source corpus: a registered corpus name or a JSONL file in our schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..registry import CORPUS_LOADERS, load_training_corpus
from ..shards import read_jsonl


def load_source(source: str, path: str | None = None) -> list[dict[str, Any]]:
    """Load English OIE records to translate, failing early and clearly.

    Args:
        source (`str`): a registered corpus name (``oie2016``, ``openie4``, ...) or a path to a JSONL file
            with one record of the OIE schema per line (``id``, ``sentence``, ``extractions`` with
            ``arg0``, ``relation``, ``args``).
        path (`str`, *optional*): file or directory passed to a registered loader.

    Raises:
        ValueError: if the source is unknown, does not load, is empty, or is not English.
    """
    if Path(source).is_file():
        try:
            rows = read_jsonl(source)
        except (OSError, ValueError) as e:
            raise ValueError(f"`source` file {source!r} could not be read: {e}") from None
        where = f"file {source!r}"
    elif source in CORPUS_LOADERS:
        try:
            rows = list(load_training_corpus(source, path=path))
        except Exception as e:  # noqa: BLE001 - any loader failure becomes one clear message
            raise ValueError(
                f"`source` corpus {source!r} failed to load ({type(e).__name__}: {e}); check `--source-path`."
            ) from None
        where = f"corpus {source!r}"
    else:
        raise ValueError(
            f"`source` {source!r} is neither an existing JSONL file nor a registered corpus "
            f"({', '.join(CORPUS_LOADERS.names())})."
        )
    if not rows:
        raise ValueError(f"`source` {where} holds no records.")
    for i, row in enumerate(rows):
        missing = {"id", "sentence", "extractions"} - set(row)
        if missing:
            raise ValueError(f"`source` {where}, record {i}: missing field(s) {sorted(missing)}.")
        if row.get("language", "en") != "en":
            raise ValueError(
                f"`source` {where}, record {i} (id {row['id']!r}) has language {row['language']!r}; "
                "the source must be English."
            )
    if not any(row["extractions"] for row in rows):
        raise ValueError(f"`source` {where} has no extractions to transfer.")
    return rows
