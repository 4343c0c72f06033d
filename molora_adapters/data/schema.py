"""The one OIE record schema shared by training corpora, benchmark gold sets and LLM-generated data.

A record is one sentence with all of its extractions. Positions are word indices into
``words`` (lists, because OIE2016 relations may be discontinuous); an empty list means
"not aligned". ``meta`` is a JSON string for provenance (source file and line, LLM backend,
prompt version, raw responses, ...), so that corpora with different provenance concatenate.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import datasets

EXTRACTION_FEATURES = {
    "arg0": datasets.Value("string"),
    "relation": datasets.Value("string"),
    "args": datasets.Sequence(datasets.Value("string")),
    "context": datasets.Value("string"),
    "confidence": datasets.Value("float32"),
    "arg0_pos": datasets.Sequence(datasets.Value("int32")),
    "relation_pos": datasets.Sequence(datasets.Value("int32")),
    "args_pos": datasets.Sequence(datasets.Sequence(datasets.Value("int32"))),
}

OIE_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "sentence": datasets.Value("string"),
        "words": datasets.Sequence(datasets.Value("string")),
        "language": datasets.Value("string"),
        "extractions": [EXTRACTION_FEATURES],
        "meta": datasets.Value("string"),
    }
)


@dataclass
class OIETuple:
    """One extraction in the shared schema (see module docstring)."""

    arg0: str
    relation: str
    args: list[str] = field(default_factory=list)
    context: str | None = None
    confidence: float = 1.0
    arg0_pos: list[int] = field(default_factory=list)
    relation_pos: list[int] = field(default_factory=list)
    args_pos: list[list[int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OIERecord:
    """One sentence with its extractions (see module docstring)."""

    id: str
    sentence: str
    words: list[str]
    language: str
    extractions: list[OIETuple] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["meta"] = json.dumps(self.meta, ensure_ascii=False, sort_keys=True)
        return d


def records_to_dataset(records: list[OIERecord] | list[dict[str, Any]]) -> datasets.Dataset:
    """Build a `datasets.Dataset` with :data:`OIE_FEATURES` from records or record dicts."""
    rows = [r.to_dict() if isinstance(r, OIERecord) else r for r in records]
    cols = {k: [row[k] for row in rows] for k in OIE_FEATURES}
    return datasets.Dataset.from_dict(cols, features=OIE_FEATURES)
