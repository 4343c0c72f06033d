"""X-STA (Cao et al., 2023, arXiv 2311.06758): cross-lingual extractive QA by Sharing, Teaching and Aligning.

Every public name loads its module on first attribute access: the core (config, GDKS layer, ATGC head, MGSA losses,
model methods) needs torch and ``adapters``; the data, metric, trainer and pipeline modules also ``datasets`` and
``transformers`` pipelines.
"""

from .. import _plugin
from ..utils.lazy import lazy_exports

_LAZY = {
    "DataCollatorForXSTA": ".data",
    "GDKS_ATTR": ".layer",
    "KnowledgeSharing": ".layer",
    "PairBatchSampler": ".data",
    "PairState": ".layer",
    "QAInput": ".pipeline",
    "SUPPORTED_MODEL_TYPES": ".config",
    "XQUAD_LANGUAGES": ".config",
    "XQuADLoadReport": ".data",
    "XSTAConfig": ".config",
    "XSTAHeadOutput": ".head",
    "XSTAModelMixin": ".model",
    "XSTAQAHead": ".head",
    "XSTAQuestionAnsweringHFPipeline": ".hf_pipeline",
    "XSTAQuestionAnsweringPipeline": ".pipeline",
    "XSTATrainer": ".training",
    "XSTATrainerMixin": ".training",
    "XSTA_HEAD_TYPE": ".head",
    "active_xsta": ".model",
    "build_features": ".data",
    "build_pair_features": ".data",
    "gdks_attention": ".layer",
    "info_nce": ".losses",
    "load_xquad": ".data",
    "make_pair_batch": ".data",
    "pair_attention_entropy": ".losses",
    "pair_languages": ".layer",
    "postprocess_predictions": ".data",
    "predict_answers": ".pipeline",
    "register_xsta_head": ".head",
    "span_cross_entropy": ".losses",
    "split_articles": ".data",
    "squad_exact_match": ".metric",
    "squad_f1": ".metric",
    "squad_scores": ".metric",
    "xsta_parameters": ".model",
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
    "XSTAQuestionAnsweringHFPipeline",
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

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


# `transformers.pipeline("xsta-question-answering", ...)`, as soon as transformers' pipelines are imported
_plugin.register_pipelines_when_imported("molora_adapters.xsta.hf_pipeline")
