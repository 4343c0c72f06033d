"""``XSTAQuestionAnsweringPipeline``: questions + contexts in, answer spans out, paired or source-free.

* **paired** (the paper's inference): each question comes with its English (source) parallel question and context;
  the model sees ``[source; target]`` and the answer score is target logits + teacher logits.
* **source-free**: only the target question and context; GDKS reduces to self-attention and the head scores the
  single stream with the target language's normalisation statistics.

Like the OIE pipeline it follows the transformers contract (``preprocess`` -> ``_forward`` -> ``postprocess``, only
``_forward`` touches the device) without subclassing ``transformers.Pipeline``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..utils.precision import PRECISIONS, Precision, autocast, resolve_precision
from .data import DataCollatorForXSTA, QAExample, build_features, build_pair_features, postprocess_predictions
from .model import active_xsta


@dataclass(frozen=True)
class QAInput:
    """One question to answer; ``source_*`` (all or none) give the English parallel text for paired inference."""

    question: str
    context: str
    language: str
    id: str = "q"
    source_question: str | None = None
    source_context: str | None = None
    source_language: str = "en"

    @property
    def paired(self) -> bool:
        return self.source_question is not None and self.source_context is not None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QAInput:
        if not isinstance(data, dict):
            raise ValueError(f"A question must be a JSON object, got {type(data).__name__}.")
        for key in ("question", "context", "language"):
            if not isinstance(data.get(key), str) or not data[key].strip():
                raise ValueError(f"Field `{key}` must be a non-empty string, got {data.get(key)!r}.")
        if (data.get("source_question") is None) != (data.get("source_context") is None):
            raise ValueError(
                "Give both `source_question` and `source_context` (paired) or neither (source-free)."
            )
        known = {
            "question",
            "context",
            "language",
            "id",
            "source_question",
            "source_context",
            "source_language",
        }
        return cls(**{k: str(v) for k, v in data.items() if k in known and v is not None})


class XSTAQuestionAnsweringPipeline:
    """Answer extraction with an X-STA head.

    Args:
        model: a flex-head `adapters` model with an X-STA head (the active head, or ``head_name``).
        tokenizer: its fast tokenizer.
        head_name (`str`, *optional*): the X-STA head to use.
        max_length (`int`, *optional*, defaults to 384): window length.
        doc_stride (`int`, *optional*, defaults to 128): window overlap.
        batch_size (`int`, *optional*, defaults to 16): windows (pairs) per forward.
        max_answer_length (`int`, *optional*, defaults to 30): longest answer in tokens.
        max_query_length (`int`, *optional*, defaults to 64): longest question in tokens (capped so that a window
            keeps room for context).
        precision (`str`, *optional*, defaults to `"auto"`): ``"bf16"`` runs the model under bf16 autocast,
            ``"fp32"`` in float32; ``"auto"`` picks bf16 on CPUs with native bf16 (``avx512_bf16`` / AMX) and on
            CUDA devices that support it, float32 elsewhere (as the OIE pipeline does). Scores are read in float32
            either way; pass ``"fp32"`` for bit-stable outputs.
    """

    def __init__(
        self,
        model,
        tokenizer,
        head_name: str | None = None,
        max_length: int = 384,
        doc_stride: int = 128,
        batch_size: int = 16,
        max_answer_length: int = 30,
        max_query_length: int = 64,
        precision: Precision = "auto",
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"`precision` must be one of {PRECISIONS}, got {precision!r}.")
        if head_name is not None:
            model.active_head = head_name
        if active_xsta(model) is None:
            raise ValueError(
                "`model` has no active X-STA head; pass `head_name` or add one with `model.add_xsta`."
            )
        self.model, self.tokenizer = model, tokenizer
        self.max_length, self.doc_stride = max_length, doc_stride
        self.batch_size, self.max_answer_length = batch_size, max_answer_length
        self.max_query_length = min(max_query_length, max_length - doc_stride - 4)
        self.collator = DataCollatorForXSTA(tokenizer)
        self.precision = precision

    def preprocess(self, inputs: Sequence[QAInput]) -> list[dict[str, Any]]:
        """Windows of every input: paired items where the source is given, single features otherwise."""
        items = []
        for k, qa in enumerate(inputs):
            qid = f"{k}:{qa.id}"
            target = QAExample(qid, "", qa.context, qa.question, (("", 0),), qa.language)
            feats = build_features(
                self.tokenizer, [target], self.max_length, self.doc_stride, False, self.max_query_length
            )
            if qa.paired:
                source = QAExample(
                    qid, "", qa.source_context, qa.source_question, (("", 0),), qa.source_language
                )
                src = build_features(
                    self.tokenizer, [source], self.max_length, self.doc_stride, False, self.max_query_length
                )
                items.extend(build_pair_features(src, feats))
            else:
                items.extend(feats)
        return items

    @torch.no_grad()
    def _forward(self, items: Sequence[dict[str, Any]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Start/end scores of every item (one language pair or language per forward)."""
        self.model.eval()
        device = next(self.model.parameters()).device
        precision = resolve_precision(self.precision, device)
        out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(items)
        groups: dict[tuple, list[int]] = {}
        for i, it in enumerate(items):
            key = (
                (it["source"]["language"], it["target"]["language"]) if "source" in it else (it["language"],)
            )
            groups.setdefault(key, []).append(i)
        for idx in groups.values():
            idx.sort(key=lambda i: len((items[i].get("target") or items[i])["input_ids"]))  # less padding
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s : s + self.batch_size]
                batch = self.collator([items[i] for i in chunk])
                batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
                with autocast(precision, device):
                    res = self.model(**batch, return_dict=True)
                starts, ends = res.start_logits.float().cpu().numpy(), res.end_logits.float().cpu().numpy()
                for j, i in enumerate(chunk):
                    out[i] = (starts[j], ends[j])
        return out  # type: ignore[return-value]

    def postprocess(
        self, inputs: Sequence[QAInput], items: Sequence[dict[str, Any]], scores
    ) -> list[dict[str, Any]]:
        """One ``{"id", "answer", "paired"}`` dict per input (``answer`` is ``""`` when no span was found)."""
        features = [it["target"] if "source" in it else it for it in items]
        contexts = {f"{k}:{qa.id}": qa.context for k, qa in enumerate(inputs)}
        answers = postprocess_predictions(
            features,
            [s for s, _ in scores],
            [e for _, e in scores],
            max_answer_length=self.max_answer_length,
            contexts=contexts,
        )
        return [
            {"id": qa.id, "answer": answers.get(f"{k}:{qa.id}", ""), "paired": qa.paired}
            for k, qa in enumerate(inputs)
        ]

    def __call__(self, inputs: QAInput | dict | Sequence[QAInput | dict]) -> list[dict[str, Any]]:
        """Answer one input or a list of inputs (``QAInput`` or dicts with its fields)."""
        if isinstance(inputs, (QAInput, dict)):
            inputs = [inputs]
        parsed = [qa if isinstance(qa, QAInput) else QAInput.from_dict(qa) for qa in inputs]
        items = self.preprocess(parsed)
        return self.postprocess(parsed, items, self._forward(items))


def predict_answers(
    pipeline: XSTAQuestionAnsweringPipeline,
    targets: Sequence[QAExample],
    sources: dict[str, QAExample] | None = None,
) -> dict[str, str]:
    """Answers for evaluation examples: id -> text; paired when ``sources`` (id -> English example) is given."""
    inputs = []
    for ex in targets:
        src = sources.get(ex.id) if sources is not None else None
        inputs.append(
            QAInput(
                ex.question,
                ex.context,
                ex.language,
                id=ex.id,
                source_question=src.question if src is not None else None,
                source_context=src.context if src is not None else None,
                source_language=src.language if src is not None else "en",
            )
        )
    return {r["id"]: r["answer"] for r in pipeline(inputs)}
