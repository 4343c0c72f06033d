"""`evaluate` script for the BenchIE scorer of molora-adapters: `evaluate.load("<this file>", config_name=LANG)`.

The implementation lives in :mod:`molora_adapters.oie.benchmarks.metric`; this file only exposes it.
"""

from molora_adapters.oie.benchmarks.metric import BenchIE  # noqa: F401
