"""OIE extraction formats: the row type, the readers and the writers that the CLI and the scorers share.

This sub-package sits below both ``molora extract`` (:mod:`molora_adapters.oie.cli`) and the scorers
(:mod:`molora_adapters.oie.benchmarks`): it imports neither.
"""

from .readers import (
    FORMAT_ALIASES,
    PREDICTION_READERS,
    format_choices,
    iter_lines,
    read_benchie,
    read_jsonl,
    read_openie4,
    read_predictions,
    read_tabbed,
    register_prediction_reader,
    resolve_format,
    rows_from_extractions,
)
from .rows import ExtractionRow, char_tokenize, normalize_key
from .writers import (
    OUTPUT_FORMATS,
    LineResult,
    format_benchie,
    format_jsonl,
    format_tabbed,
    write_benchie,
    write_jsonl,
    write_results,
    write_tabbed,
)

__all__ = [
    "ExtractionRow",
    "FORMAT_ALIASES",
    "LineResult",
    "OUTPUT_FORMATS",
    "PREDICTION_READERS",
    "char_tokenize",
    "format_benchie",
    "format_choices",
    "format_jsonl",
    "format_tabbed",
    "iter_lines",
    "normalize_key",
    "read_benchie",
    "read_jsonl",
    "read_openie4",
    "read_predictions",
    "read_tabbed",
    "register_prediction_reader",
    "resolve_format",
    "rows_from_extractions",
    "write_benchie",
    "write_jsonl",
    "write_results",
    "write_tabbed",
]
