"""X-STA question answering as a ``transformers`` pipeline, task ``"xsta-question-answering"``, with the contract of
transformers' ``question-answering`` pipeline: ``qa(question=..., context=...)`` (or a dict, or a list of dicts)
returns ``{"score", "start", "end", "answer"}`` with ``answer == context[start:end]``.

X-STA needs the input's ``language`` (a call argument, or a field of each dict) and answers *paired* when a dict also
gives the English ``source_question`` and ``source_context``. Registered by importing :mod:`molora_adapters.xsta`, as
soon as ``transformers.pipelines`` is imported; transformers' own ``question-answering`` task is left alone.

Example::

    from transformers import pipeline
    import molora_adapters.xsta

    qa = pipeline("xsta-question-answering", model="xsta_xquad_out/model")
    qa(question="Wo liegt Berlin?", context="Berlin liegt an der Spree.", language="de")
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..utils.hf_pipelines import WrappedPipeline, register_task

TASK = "xsta-question-answering"
"""The task name under which the pipeline is registered."""

# XSTAQuestionAnsweringPipeline options that `pipeline(TASK, ..., name=value)` passes through.
XSTA_OPTIONS = ("head_name", "max_length", "doc_stride", "max_answer_length", "max_query_length", "precision")


class XSTAModel:
    """The ``pt_model`` of the registered task: ``AutoAdapterModel.from_pretrained`` in eval mode."""

    @classmethod
    def from_pretrained(cls, model_name_or_path: str, **kwargs: Any):
        from adapters import AutoAdapterModel

        return AutoAdapterModel.from_pretrained(model_name_or_path).eval()


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def best_span(
    features: list[dict[str, Any]], scores: list[tuple[np.ndarray, np.ndarray]], max_answer_length: int
) -> tuple[float, int, int] | None:
    """``(score, start_char, end_char)`` of the most probable answer over the windows of one question: per window,
    start and end probabilities are softmaxes over the context tokens, a span's score is ``p_start * p_end`` with
    ``start <= end < start + max_answer_length`` (transformers' question-answering rule); ``None`` without context.
    """
    best = None
    for feat, (s_log, e_log) in zip(features, scores, strict=True):
        offsets = feat["offsets"]
        valid = np.array([o is not None for o in offsets])
        if not valid.any():
            continue
        n = len(offsets)
        p_s = _softmax(np.where(valid, np.asarray(s_log[:n], np.float64), -np.inf))
        p_e = _softmax(np.where(valid, np.asarray(e_log[:n], np.float64), -np.inf))
        span = np.triu(np.outer(p_s, p_e)) - np.triu(np.ones((n, n)), k=max_answer_length)  # (start, end)
        s, e = np.unravel_index(int(np.argmax(span)), span.shape)
        if best is None or span[s, e] > best[0]:
            best = (float(span[s, e]), offsets[s][0], offsets[e][1])
    return best


class XSTAQuestionAnsweringHFPipeline(WrappedPipeline):
    """``transformers.Pipeline`` over :class:`~molora_adapters.xsta.pipeline.XSTAQuestionAnsweringPipeline`.

    Args:
        model: a flex-head ``adapters`` model with an X-STA head.
        tokenizer: its fast tokenizer.
        **kwargs: :data:`XSTA_OPTIONS` go to the X-STA pipeline; the rest to ``transformers.Pipeline``.
    """

    OPTIONS = XSTA_OPTIONS

    def build(self, model, tokenizer, **options: Any):
        from .pipeline import XSTAQuestionAnsweringPipeline

        return XSTAQuestionAnsweringPipeline(model, tokenizer, **options)

    def __call__(self, *args: Any, **kwargs: Any):
        """``qa(question=..., context=...)``, ``qa({"question", "context", ...})`` or ``qa([dict, ...])``."""
        if not args and "question" in kwargs and "context" in kwargs:
            args = ({"question": kwargs.pop("question"), "context": kwargs.pop("context")},)
        return super().__call__(*args, **kwargs)

    def _sanitize_parameters(self, language: str | None = None, **kwargs: Any):
        if kwargs:
            raise TypeError(
                f"Unknown argument(s) {sorted(kwargs)}; the call takes `question`, `context`, `language`."
            )
        return ({"language": language} if language is not None else {}), {}, {}

    def preprocess(self, inputs: dict[str, Any], language: str | None = None) -> dict[str, Any]:
        from .pipeline import QAInput

        if not isinstance(inputs, dict):
            raise TypeError(f"Expected a dict with `question` and `context`, got {type(inputs).__name__}.")
        data = dict(inputs)
        if language is not None and not data.get("language"):
            data["language"] = language
        qa = QAInput.from_dict(data)
        return {"qa": qa, "items": self.inner.preprocess([qa])}

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        return {**model_inputs, "scores": self.inner._forward(model_inputs["items"])}

    def postprocess(self, model_outputs: dict[str, Any]) -> dict[str, Any]:
        items = model_outputs["items"]
        features = [it["target"] if "source" in it else it for it in items]
        context = model_outputs["qa"].context
        best = best_span(features, model_outputs["scores"], self.inner.max_answer_length)
        if best is None:
            return {"score": 0.0, "start": 0, "end": 0, "answer": ""}
        score, start, end = best
        return {"score": score, "start": int(start), "end": int(end), "answer": context[start:end]}


def register() -> None:
    """Register :data:`TASK` with ``transformers.pipelines.PIPELINE_REGISTRY`` (idempotent)."""
    register_task(TASK, XSTAQuestionAnsweringHFPipeline, XSTAModel)


register()  # also when this module is imported first (it imports transformers' pipelines itself)
