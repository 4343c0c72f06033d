"""What the OIE layer hands to annotation projection (:mod:`molora_adapters.data.projection`).

The data layer never imports the task layer above it; ``molora project`` wires these in:

* :func:`pipeline_extractor`: silver English tuples from a trained English :class:`OIEPipeline`;
* :func:`evaluation_sentences`: the shipped evaluation sentences of a language, for the leak check;
* the ``reoie2016`` parallel source (Re-OIE2016 en gold with its es/pt translations), registered on import.
"""

from __future__ import annotations

from typing import Any

from ..data.projection.pipeline import SilverExtractor
from ..data.projection.sentences import Sentence
from ..data.projection.sources import ParallelUnit, register_parallel_source
from .benchmarks.gold import load_benchmark
from .pipeline import OIEPipeline

__all__ = ["EVALUATION_SETS", "evaluation_sentences", "load_reoie2016_parallel", "pipeline_extractor"]


# Evaluation sentences per language, as (benchmark, split) pairs of the shipped gold sets.
EVALUATION_SETS: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("benchie", "test"),
        ("carb", "dev"),
        ("carb", "test"),
        ("reoie2016", "test"),
        ("oie2016", "dev"),
        ("oie2016", "test"),
    ],
    "de": [("benchie", "test")],
    "zh": [("benchie", "test"), ("carb", "test")],
    "es": [("carb", "test"), ("reoie2016", "test")],
    "pt": [("carb", "test"), ("reoie2016", "test")],
    "hi": [("carb", "test")],
    "te": [("carb", "test")],
}


def evaluation_sentences(language: str) -> list[str]:
    """Every shipped evaluation sentence of ``language`` (see :data:`EVALUATION_SETS`); empty for others.

    Args:
        language (`str`): a language code.
    """
    return [
        r["sentence"]
        for name, split in EVALUATION_SETS.get(language, [])
        for r in load_benchmark(name, language, split=split)
    ]


def pipeline_extractor(
    model: str, *, adapter: str | None = None, min_confidence: float = 0.0, batch_size: int = 32
) -> SilverExtractor:
    """A :data:`~molora_adapters.data.projection.SilverExtractor` over an :class:`~molora_adapters.oie.pipeline.OIEPipeline`.

    The pipeline gets each sentence's words joined by single spaces, so its whitespace words are exactly
    the projection's words and its positions need no re-alignment.

    Args:
        model (`str`): directory of a model saved with an OIE head.
        adapter (`str`, *optional*): adapter directory to load and activate.
        min_confidence (`float`, *optional*, defaults to 0.0): drop tuples below this confidence.
        batch_size (`int`, *optional*, defaults to 32): encoder inputs per forward pass.
    """
    pipe = OIEPipeline.from_pretrained(model, adapter=adapter)

    def extract(sentences: list[list[str]]) -> list[list[dict[str, Any]]]:
        results = pipe.extract([" ".join(w) for w in sentences], language="en", batch_size=batch_size)
        return [
            [
                {
                    "arg0": e.arg0,
                    "relation": e.relation,
                    "args": list(e.args),
                    "confidence": float(e.confidence),
                    "arg0_pos": list(e.arg0_pos),
                    "relation_pos": list(e.relation_pos),
                    "args_pos": [list(p) for p in e.args_pos],
                }
                for e in exts
                if e.confidence >= min_confidence and e.arg0_pos and e.relation_pos
            ]
            for exts in results
        ]

    return extract


def _gold_tuples(record: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for e in record["extractions"]:
        out.append(
            {
                k: e[k]
                for k in (
                    "arg0",
                    "relation",
                    "args",
                    "context",
                    "confidence",
                    "arg0_pos",
                    "relation_pos",
                    "args_pos",
                )
            }
        )
    return out


def load_reoie2016_parallel(languages: list[str], path: str | None = None, **_: Any) -> list[ParallelUnit]:
    """Re-OIE2016 en gold with its es / pt translations as one unit (see module docstring).

    Args:
        languages (`list[str]`): ``es`` and/or ``pt``.
        path (`str`, *optional*): unused (the vendored gold files are read).
    """
    bad = sorted(set(languages) - {"es", "pt"})
    if bad:
        raise ValueError(f"`languages` {bad} are not in Re-OIE2016; it has es and pt translations.")
    en = load_benchmark("reoie2016", "en")
    source = [Sentence.from_words(r["words"], "en") for r in en]
    return [
        ParallelUnit(
            id="reoie2016",
            source=source,
            targets={
                lang: [Sentence.from_words(r["words"], lang) for r in load_benchmark("reoie2016", lang)]
                for lang in languages
            },
            gold=[_gold_tuples(r) for r in en],
        )
    ]


register_parallel_source("reoie2016", load_reoie2016_parallel)
