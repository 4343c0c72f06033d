"""The scorers as `evaluate` metrics, and a ``compute_metrics`` factory for `transformers.Trainer`.

Use them directly (``CaRB(config_name="zh")``), through ``evaluate.load(metric_path("carb"),
config_name="zh")`` (scripts shipped in ``metrics/<name>/<name>.py``), or with the Trainer::

    trainer = Trainer(..., compute_metrics=make_compute_metrics("carb", decode, lang="en"))

where ``decode(eval_prediction)`` returns extractions in any shape
:func:`~.readers.rows_from_extractions` accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import evaluate

from .api import score_extractions

_CITATIONS = {
    "carb": "@inproceedings{bhardwaj-etal-2019-carb, title={{CaRB}: A Crowdsourced Benchmark for Open IE}, "
    "author={Bhardwaj, Sangnie and Aggarwal, Samarth and Mausam}, booktitle={EMNLP-IJCNLP}, year={2019}}",
    "benchie": "@inproceedings{gashteovski-etal-2022-benchie, title={{BenchIE}: A Framework for Multi-Faceted "
    "Fact-Based Open Information Extraction Evaluation}, author={Gashteovski, Kiril and others}, "
    "booktitle={ACL}, year={2022}}",
    "reoie2016": "@inproceedings{zhan-zhao-2020-span, title={Span Model for Open Information Extraction on "
    "Accurate Corpus}, author={Zhan, Junlang and Zhao, Hai}, booktitle={AAAI}, year={2020}}",
}
_CITATIONS["oie2016"] = _CITATIONS["reoie2016"]

PREDICTION_FEATURES = datasets.Features(
    {
        "predictions": {
            "sentence": datasets.Value("string"),
            "extractions": [
                {
                    "arg0": datasets.Value("string"),
                    "relation": datasets.Value("string"),
                    "args": datasets.Sequence(datasets.Value("string")),
                    "confidence": datasets.Value("float64"),
                }
            ],
        }
    }
)


class _OIEBenchmarkMetric(evaluate.Metric):
    """Base: ``predictions`` are records ``{"sentence", "extractions": [{arg0, relation, args,
    confidence}]}``; ``config_name`` is the gold language; ``compute(..., gold=PATH, **options)``."""

    BENCHMARK = ""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=f"{self.BENCHMARK} scorer with the official tool's semantics (molora-adapters).",
            citation=_CITATIONS.get(self.BENCHMARK, ""),
            inputs_description="predictions: list of {'sentence', 'extractions': [{'arg0', 'relation', "
            "'args', 'confidence'}]} records; optional kwargs: lang, gold, scorer options.",
            features=PREDICTION_FEATURES,
        )

    def _compute(
        self,
        predictions,
        lang: str | None = None,
        gold: str | None = None,
        curve: bool = False,
        **options: Any,
    ) -> dict:
        lang = lang or (self.config_name if self.config_name not in (None, "default") else "en")
        result = score_extractions(self.BENCHMARK, predictions, lang=lang, gold=gold, **options)
        if not curve:
            result.pop("curve", None)
        return result


class CaRB(_OIEBenchmarkMetric):
    BENCHMARK = "carb"


class BenchIE(_OIEBenchmarkMetric):
    BENCHMARK = "benchie"


class ReOIE2016(_OIEBenchmarkMetric):
    BENCHMARK = "reoie2016"


class OIE2016(_OIEBenchmarkMetric):
    BENCHMARK = "oie2016"


METRICS = {"carb": CaRB, "benchie": BenchIE, "reoie2016": ReOIE2016, "oie2016": OIE2016}


def metric_path(name: str) -> str:
    """Path of the shipped `evaluate` script for ``name`` (for ``evaluate.load(metric_path("carb"))``)."""
    if name not in METRICS:
        raise ValueError(f"Unknown metric `{name}`; choose one of {', '.join(sorted(METRICS))}.")
    return str(Path(__file__).parent / "metrics" / name / f"{name}.py")


def make_compute_metrics(
    benchmark: str, decode: Callable[[Any], Any], *, lang: str = "en", gold: str | None = None, **options: Any
) -> Callable[[Any], dict[str, float]]:
    """A ``compute_metrics`` for `transformers.Trainer` that scores decoded extractions.

    Args:
        benchmark (`str`): ``"carb"``, ``"benchie"``, ``"reoie2016"`` or ``"oie2016"``.
        decode (`Callable`): ``EvalPrediction -> extractions`` (any shape
            :func:`~.readers.rows_from_extractions` accepts).
        lang (`str`, *optional*, defaults to `"en"`): gold language.
        gold (`str`, *optional*): gold file overriding the shipped one.
        **options: scorer options.

    Returns:
        A callable returning ``{"precision", "recall", "f1"[, "auc"]}`` as floats.
    """

    def compute_metrics(eval_prediction: Any) -> dict[str, float]:
        result = score_extractions(benchmark, decode(eval_prediction), lang=lang, gold=gold, **options)
        return {
            k: float(result[k]) for k in ("precision", "recall", "f1", "auc") if result.get(k) is not None
        }

    return compute_metrics
