"""molora-adapters: Mixture-of-LoRA routing and disentangled stage tuning for AdapterHub `adapters`.

Importing the package registers the plugin with `adapters` (idempotent, version-checked).
"""

from ._integration import register as _register
from .mixture import Granularity, Mixture, MixtureConfig, mixture_parameters, routing_statistics
from .version import __version__

_register()

__all__ = [
    "Granularity",
    "Mixture",
    "MixtureConfig",
    "__version__",
    "mixture_parameters",
    "routing_statistics",
]
