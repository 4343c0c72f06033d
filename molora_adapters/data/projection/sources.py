"""Parallel sources for projection: units of English sentences with their translations.

A :class:`ParallelUnit` is one English text (already split into sentences) with its translations, and
optionally English gold tuples per sentence. Sources are registered by name
(:func:`register_parallel_source`):

=============  ===============================================================  ======================
name           what                                                             English tuples
=============  ===============================================================  ======================
``xquad``      XQuAD contexts (240 Wikipedia paragraphs, 12 languages, the      silver (a trained
               same question ids in every language; CC BY-SA 4.0); ``path``:    English model)
               the directory with ``xquad.<lang>.json[.gz]`` (default: the
               copy vendored for X-STA)
``reoie2016``  Re-OIE2016 en with its es/pt translations (vendored gold, one     gold
               unit of 595 sentences); an *evaluation* set: use it to measure
               projection, never to train. Registered by
               :mod:`molora_adapters.oie.projection` (the OIE layer owns the
               gold sets), which ``molora project`` imports
=============  ===============================================================  ======================
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...registry import Registry
from ...utils.io import open_text
from .sentences import Sentence, split_sentences

__all__ = ["PARALLEL_SOURCES", "ParallelUnit", "load_parallel_source", "register_parallel_source"]


@dataclass
class ParallelUnit:
    """English sentences with their translations (paragraph-parallel, not yet sentence-paired).

    Args:
        id (`str`): stable id, shared by every language.
        source (`list[Sentence]`): English sentences in order.
        targets (`dict[str, list[Sentence]]`): translations' sentences per language code.
        gold (`list[list[dict]]`, *optional*): English gold tuples per source sentence (OIETuple dicts with
            word positions into that sentence's words); `None` when the source has no gold.
    """

    id: str
    source: list[Sentence]
    targets: dict[str, list[Sentence]] = field(default_factory=dict)
    gold: list[list[dict[str, Any]]] | None = None

    def __post_init__(self) -> None:
        if self.gold is not None and len(self.gold) != len(self.source):
            raise ValueError(
                f"unit {self.id!r}: {len(self.gold)} gold lists for {len(self.source)} sentences."
            )


ParallelSource = Callable[..., list[ParallelUnit]]
PARALLEL_SOURCES: Registry[ParallelSource] = Registry("parallel source")


def register_parallel_source(name: str, loader: ParallelSource | None = None, *, overwrite: bool = False):
    """Register a parallel source ``(languages, path=None, **kw) -> list[ParallelUnit]`` (decorator too)."""
    return PARALLEL_SOURCES.register(name, loader, overwrite=overwrite)


def load_parallel_source(
    name: str, languages: list[str], path: str | None = None, **kwargs
) -> list[ParallelUnit]:
    """Load the parallel source registered as ``name`` for ``languages``."""
    return PARALLEL_SOURCES.get(name)(languages, path=path, **kwargs)


def _xquad_paragraphs(path: Path, lang: str) -> dict[str, str]:
    file = path / f"xquad.{lang}.json"
    if not file.is_file() and (path / f"xquad.{lang}.json.gz").is_file():
        file = path / f"xquad.{lang}.json.gz"
    if not file.is_file():
        raise FileNotFoundError(
            f"XQuAD file {str(file)!r} does not exist; `path` must hold xquad.<lang>.json (or .json.gz)."
        )
    with open_text(file) as f:
        data = json.load(f)
    out = {}
    for art in data["data"]:
        for para in art["paragraphs"]:
            # paragraphs have no id of their own: the first question id is shared by all languages
            out[para["qas"][0]["id"]] = para["context"]
    return out


@register_parallel_source("xquad")
def load_xquad(languages: list[str], path: str | None = None, **_: Any) -> list[ParallelUnit]:
    """XQuAD contexts as units (see module docstring). Paragraph order is the English file's order.

    Args:
        languages (`list[str]`): target languages (each needs ``xquad.<lang>.json`` or ``.json.gz``).
        path (`str`, *optional*): directory with the XQuAD files; defaults to the vendored copy
            (``molora_adapters/resources/xquad``, CC BY-SA 4.0, see its SOURCES.md).
    """
    root = Path(path) if path is not None else Path(__file__).resolve().parents[2] / "resources" / "xquad"
    english = _xquad_paragraphs(root, "en")
    targets = {lang: _xquad_paragraphs(root, lang) for lang in languages}
    for lang, paras in targets.items():
        if paras.keys() != english.keys():
            raise ValueError(
                f"xquad.{lang}.json does not have the same paragraphs (question ids) as xquad.en.json."
            )
    return [
        ParallelUnit(
            id=f"xquad-{pid}",
            source=[Sentence.from_text(s, "en") for s in split_sentences(text, "en")],
            targets={
                lang: [Sentence.from_text(s, lang) for s in split_sentences(targets[lang][pid], lang)]
                for lang in languages
            },
        )
        for pid, text in english.items()
    ]
