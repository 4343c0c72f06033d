"""`evaluate` script for the ReOIE2016 scorer of molora-adapters: `evaluate.load("<this file>", config_name=LANG)`.

The implementation lives in :mod:`molora_adapters.oie.benchmarks.metric`; this file only exposes it.
"""

from molora_adapters.oie.benchmarks.metric import ReOIE2016  # noqa: F401
