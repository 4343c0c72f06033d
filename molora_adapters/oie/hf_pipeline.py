"""Open Information Extraction as a ``transformers`` pipeline: ``pipeline("open-information-extraction", model=DIR)``.

Importing :mod:`molora_adapters.oie` registers the task with ``transformers.pipelines.PIPELINE_REGISTRY`` as soon as
``transformers.pipelines`` is imported (not before, so that the command line stays light). The pipeline is a thin
``transformers.Pipeline`` over :class:`~molora_adapters.oie.pipeline.OIEPipeline`: one sentence per call of the
``preprocess`` / ``_forward`` / ``postprocess`` contract, ``_forward`` alone running the model. Use
:class:`OIEPipeline` directly to batch many sentences by length.

Example::

    from transformers import pipeline
    import molora_adapters.oie

    oie = pipeline("open-information-extraction", model="runs/oie_crosslingual/train")
    oie("Marie Curie was born in Warsaw .")   # [{"arg0": "Marie Curie", "relation": "was born", ...}]
"""

from __future__ import annotations

from typing import Any

from ..utils.hf_pipelines import WrappedPipeline, register_task

TASK = "open-information-extraction"
"""The task name under which the pipeline is registered."""

# OIEPipeline options that `pipeline(TASK, ..., name=value)` passes through.
OIE_OPTIONS = (
    "head_name",
    "confidence_mode",
    "min_args",
    "span_strategy",
    "precision",
    "max_predicates_per_chunk",
    "argument_batch_size",
)


class OIEModel:
    """The ``pt_model`` of the registered task: loads a saved OIE model or a staged run (see ``load_oie_model``)."""

    @classmethod
    def from_pretrained(cls, model_name_or_path: str, **kwargs: Any):
        from .pipeline import load_oie_model

        return load_oie_model(model_name_or_path)


class OpenInformationExtractionPipeline(WrappedPipeline):
    """Extract ``{"arg0", "relation", "args", "confidence", ...}`` tuples from a sentence (or each of a list).

    Args:
        model: a flex-head ``adapters`` model with an OIE head.
        tokenizer: its fast tokenizer.
        **kwargs: :data:`OIE_OPTIONS` go to :class:`OIEPipeline`; the rest to ``transformers.Pipeline``.
    """

    OPTIONS = OIE_OPTIONS

    def build(self, model, tokenizer, **options: Any):
        from .pipeline import OIEPipeline

        return OIEPipeline(model, tokenizer, progress=False, **options)

    def _sanitize_parameters(self, language: str | None = None, **kwargs: Any):
        if kwargs:
            raise TypeError(f"Unknown argument(s) {sorted(kwargs)}; the call takes `language`.")
        return ({"language": language} if language is not None else {}), {}, {}

    def preprocess(self, sentence: str, language: str | None = None) -> dict[str, Any]:
        if not isinstance(sentence, str):
            raise TypeError(f"Expected a sentence (`str`), got {type(sentence).__name__}.")
        return {"sentence": sentence, "language": language}

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        extractions = self.inner.extract(model_inputs["sentence"], language=model_inputs["language"])
        return {"extractions": extractions}

    def postprocess(self, model_outputs: dict[str, Any]) -> list[dict[str, Any]]:
        return [e.to_dict() for e in model_outputs["extractions"]]


def register() -> None:
    """Register :data:`TASK` with ``transformers.pipelines.PIPELINE_REGISTRY`` (idempotent)."""
    register_task(TASK, OpenInformationExtractionPipeline, OIEModel)


register()  # also when this module is imported first (it imports transformers' pipelines itself)
