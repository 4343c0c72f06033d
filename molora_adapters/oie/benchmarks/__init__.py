"""OIE benchmarks as plugins: CaRB, BenchIE and (Re-)OIE2016 scorers with the official tools' semantics,
shipped gold sets with a `datasets` loader registry, `evaluate` metrics and the ``molora evaluate`` command.
The readers and writers of system outputs live in :mod:`molora_adapters.oie.formats` (re-exported here).
"""

from ..formats.readers import (
    FORMAT_ALIASES,
    PREDICTION_READERS,
    read_benchie,
    read_jsonl,
    read_openie4,
    read_predictions,
    read_tabbed,
    register_prediction_reader,
    resolve_format,
    rows_from_extractions,
)
from ..formats.rows import ExtractionRow, normalize_key
from ..formats.writers import (
    OUTPUT_FORMATS,
    LineResult,
    format_benchie,
    format_tabbed,
    write_benchie,
    write_jsonl,
    write_results,
    write_tabbed,
)
from .api import SCORERS, register_scorer, score, score_extractions
from .benchie import parse_benchie_gold
from .carb import match_tuples
from .gold import BENCHMARK_LOADERS, GOLD_SETS, gold_path, load_benchmark, read_carb_gold, register_benchmark
from .leakage import DEFAULT_TEST_SETS, align_translations, leak_free_few_shot, reoie2016_english_originals

__all__ = [
    "BENCHMARK_LOADERS",
    "DEFAULT_TEST_SETS",
    "ExtractionRow",
    "FORMAT_ALIASES",
    "GOLD_SETS",
    "LineResult",
    "OUTPUT_FORMATS",
    "PREDICTION_READERS",
    "SCORERS",
    "align_translations",
    "format_benchie",
    "format_tabbed",
    "gold_path",
    "leak_free_few_shot",
    "load_benchmark",
    "match_tuples",
    "normalize_key",
    "parse_benchie_gold",
    "read_benchie",
    "read_carb_gold",
    "read_jsonl",
    "read_openie4",
    "read_predictions",
    "read_tabbed",
    "register_benchmark",
    "register_prediction_reader",
    "register_scorer",
    "reoie2016_english_originals",
    "resolve_format",
    "rows_from_extractions",
    "score",
    "score_extractions",
    "write_benchie",
    "write_jsonl",
    "write_results",
    "write_tabbed",
]
