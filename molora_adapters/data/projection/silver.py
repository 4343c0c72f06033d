"""Silver English tuples from a trained English OIE model (for parallel sources without gold)."""

from __future__ import annotations

from typing import Any

from .pipeline import SilverExtractor

__all__ = ["pipeline_extractor"]


def pipeline_extractor(
    model: str, *, adapter: str | None = None, min_confidence: float = 0.0, batch_size: int = 32
) -> SilverExtractor:
    """A :data:`~.pipeline.SilverExtractor` over an :class:`~molora_adapters.oie.pipeline.OIEPipeline`.

    The pipeline gets each sentence's words joined by single spaces, so its whitespace words are exactly
    the projection's words and its positions need no re-alignment.

    Args:
        model (`str`): directory of a model saved with an OIE head.
        adapter (`str`, *optional*): adapter directory to load and activate.
        min_confidence (`float`, *optional*, defaults to 0.0): drop tuples below this confidence.
        batch_size (`int`, *optional*, defaults to 32): encoder inputs per forward pass.
    """
    from ...oie.pipeline import OIEPipeline

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
