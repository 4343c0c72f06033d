"""JSONL with one record per line in our schema."""

from __future__ import annotations

import json
from pathlib import Path

import datasets

from ...utils.io import open_text
from ..alignment import AlignmentReport
from ..registry import register_corpus_loader
from .records import _raw, _require_path, build_records


@register_corpus_loader("jsonl")
def load_jsonl(
    path: str | None = None, *, language: str | None = None, report: AlignmentReport | None = None
) -> datasets.Dataset:
    """JSONL with one record per line in our schema (``sentence``, optional ``words``, ``language``,
    ``extractions`` with ``arg0`` / ``relation`` / ``args`` and optional ``*_pos``). Missing positions are
    aligned from the texts.

    Args:
        path (`str`): the ``.jsonl`` file (``.gz`` allowed).
        language (`str`, *optional*): language of lines without a ``language`` field (default ``"en"``).
        report (`AlignmentReport`, *optional*): receives the alignment counts.
    """
    p = Path(_require_path("jsonl", path))
    report = report if report is not None else AlignmentReport()
    by_lang: dict[str, list] = {}
    with open_text(p) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}:{lineno}: invalid JSON ({e.msg}); fix or remove the line.") from None
            if "sentence" not in rec:
                raise ValueError(f"{p}:{lineno}: record has no `sentence` field.")
            lang = rec.get("language") or language or "en"
            raws = []
            for ex in rec.get("extractions") or []:
                raw = _raw(
                    ex.get("relation", ""),
                    ex.get("arg0", ""),
                    list(ex.get("args") or []),
                    confidence=ex.get("confidence", 1.0),
                    context=ex.get("context"),
                )
                if ex.get("relation_pos"):
                    raw.update(
                        relation_pos=ex["relation_pos"],
                        arg0_pos=ex.get("arg0_pos") or [],
                        args_pos=ex.get("args_pos") or [[] for _ in raw["args"]],
                    )
                raws.append(raw)
            meta = rec.get("meta") or {}
            meta = json.loads(meta) if isinstance(meta, str) else meta
            by_lang.setdefault(lang, []).append(
                (rec["sentence"], rec.get("words"), raws, dict(meta, source=p.name, line=lineno))
            )
    parts = [
        build_records(v, language=lang, id_prefix=f"{p.stem}-{lang}", report=report)
        for lang, v in by_lang.items()
    ]
    return (
        datasets.concatenate_datasets(parts)
        if len(parts) > 1
        else parts[0]
        if parts
        else build_records([], language=language or "en", id_prefix=p.stem, report=report)
    )
