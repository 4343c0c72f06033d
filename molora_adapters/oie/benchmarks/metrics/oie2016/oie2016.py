"""`evaluate` script for the OIE2016 scorer of molora-adapters: `evaluate.load("<this file>", config_name=LANG)`.

The implementation lives in :mod:`molora_adapters.oie.benchmarks.metric`; this file only exposes it.
"""

from molora_adapters.oie.benchmarks.metric import OIE2016  # noqa: F401
