"""Open Information Extraction: Multi2OIE heads for `adapters`, decoding, the extraction pipeline and CLI."""

from .collator import DataCollatorForOIE
from .decoding import build_extraction, confidence, decode_arguments, decode_predicates, repair_bio
from .extraction import Extraction
from .features import FeatureStats, build_oie_features
from .formats import LineResult, write_results
from .heads import OIE_HEAD_TYPE, OIEHead, OIEHeadConfig, OIEHeadOutput, add_oie_head, register_oie_head
from .labels import ARG_LABELS, IGNORE_INDEX, PRED_LABELS
from .pipeline import OIEPipeline

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
