"""Published scores that our OIE results are reported beside (``benchmarks/quality_oie.py``, model cards).

Keyed like the evaluation rows (``"carb:en"``); each value is ``(system, F1, AUC or None)``.
"""

from __future__ import annotations

__all__ = ["PUBLISHED_ANCHORS"]

PUBLISHED_ANCHORS: dict[str, tuple[str, float, float | None]] = {
    "benchie:en": ("Multi2OIE", 0.2281, None),
    "benchie:de": ("Multi2OIE", 0.0400, None),
    "benchie:zh": ("Multi2OIE", 0.1295, None),
    "carb:en": ("Gen2OIE", 0.530, 0.324),
    "carb:es": ("Gen2OIE", 0.643, 0.421),
    "carb:pt": ("Gen2OIE", 0.642, 0.445),
    "carb:zh": ("Gen2OIE", 0.298, 0.103),
    "carb:hi": ("Gen2OIE", 0.517, 0.281),
    "carb:te": ("Gen2OIE", 0.394, 0.160),
}
