"""Open Information Extraction: Multi2OIE heads for `adapters`, decoding, the extraction pipeline and CLI.

Public names load their module on first access, so the command line imports torch only when it runs a model.
"""

from .. import _plugin
from ..utils.lazy import lazy_exports

_LAZY = {
    "ARG_LABELS": ".labels",
    "DataCollatorForOIE": ".collator",
    "Extraction": ".extraction",
    "FeatureStats": ".features",
    "IGNORE_INDEX": ".labels",
    "LineResult": ".formats",
    "OIEHead": ".heads",
    "OIEHeadConfig": ".heads",
    "OIEHeadOutput": ".heads",
    "OIEPipeline": ".pipeline",
    "OIE_HEAD_TYPE": ".heads",
    "OpenInformationExtractionPipeline": ".hf_pipeline",
    "PRED_LABELS": ".labels",
    "add_oie_head": ".heads",
    "build_extraction": ".decoding",
    "build_oie_features": ".features",
    "confidence": ".decoding",
    "decode_arguments": ".decoding",
    "decode_predicates": ".decoding",
    "register_oie_head": ".heads",
    "repair_bio": ".decoding",
    "write_results": ".formats",
}

__all__ = [
    "ARG_LABELS",
    "DataCollatorForOIE",
    "Extraction",
    "FeatureStats",
    "IGNORE_INDEX",
    "LineResult",
    "OIEHead",
    "OIEHeadConfig",
    "OIEHeadOutput",
    "OIEPipeline",
    "OIE_HEAD_TYPE",
    "OpenInformationExtractionPipeline",
    "PRED_LABELS",
    "add_oie_head",
    "build_extraction",
    "build_oie_features",
    "confidence",
    "decode_arguments",
    "decode_predicates",
    "register_oie_head",
    "repair_bio",
    "write_results",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


# `transformers.pipeline("open-information-extraction", ...)`, as soon as transformers' pipelines are imported
_plugin.register_pipelines_when_imported("molora_adapters.oie.hf_pipeline")
