"""X-STA (Cao et al., 2023, arXiv 2311.06758): cross-lingual extractive QA by Sharing, Teaching and Aligning.

The core (config, GDKS layer, ATGC head, MGSA losses, model methods) imports only torch and ``adapters``; the data,
metric, trainer and pipeline modules (``datasets``, ``transformers`` pipelines) load on first attribute access.
"""

from __future__ import annotations

import importlib

from .config import SUPPORTED_MODEL_TYPES, XQUAD_LANGUAGES, XSTAConfig
from .head import XSTA_HEAD_TYPE, XSTAHeadOutput, XSTAQAHead, register_xsta_head
from .layer import GDKS_ATTR, KnowledgeSharing, PairState, gdks_attention, pair_languages
from .losses import info_nce, pair_attention_entropy, span_cross_entropy
from .model import XSTAModelMixin, active_xsta, xsta_parameters

_LAZY = {
    "DataCollatorForXSTA": ".data",
    "PairBatchSampler": ".data",
    "XQuADLoadReport": ".data",
    "build_pair_features": ".data",
    "build_features": ".data",
    "load_xquad": ".data",
    "make_pair_batch": ".data",
    "split_articles": ".data",
    "postprocess_predictions": ".data",
    "squad_scores": ".metric",
    "squad_exact_match": ".metric",
    "squad_f1": ".metric",
    "XSTATrainer": ".training",
    "XSTATrainerMixin": ".training",
    "XSTAQuestionAnsweringPipeline": ".pipeline",
    "QAInput": ".pipeline",
    "predict_answers": ".pipeline",
}

__all__ = [
    "DataCollatorForXSTA",
    "GDKS_ATTR",
    "KnowledgeSharing",
    "PairBatchSampler",
    "PairState",
    "QAInput",
    "SUPPORTED_MODEL_TYPES",
    "XQUAD_LANGUAGES",
    "XQuADLoadReport",
    "XSTAConfig",
    "XSTAHeadOutput",
    "XSTAModelMixin",
    "XSTAQAHead",
    "XSTAQuestionAnsweringPipeline",
    "XSTATrainer",
    "XSTATrainerMixin",
    "XSTA_HEAD_TYPE",
    "active_xsta",
    "build_features",
    "build_pair_features",
    "gdks_attention",
    "info_nce",
    "load_xquad",
    "make_pair_batch",
    "pair_attention_entropy",
    "pair_languages",
    "postprocess_predictions",
    "predict_answers",
    "register_xsta_head",
    "span_cross_entropy",
    "split_articles",
    "squad_exact_match",
    "squad_f1",
    "squad_scores",
    "xsta_parameters",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
