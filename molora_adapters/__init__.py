"""molora-adapters: Mixture-of-LoRA routing and disentangled stage tuning for AdapterHub `adapters`.

Importing the package registers the plugin with `adapters` (idempotent, version-checked).
"""

from ._integration import register as _register
from ._integration import register_head_type as _register_head_type
from .mixture import Granularity, Mixture, MixtureConfig, mixture_parameters, routing_statistics
from .version import __version__

# Declared by path: the OIE stack is imported only when a model adds an OIE head.
_register_head_type(
    "oie", "molora_adapters.oie.heads:OIEHead", adder="molora_adapters.oie.heads:add_oie_head"
)
_register()

__all__ = [
    "Granularity",
    "Mixture",
    "MixtureConfig",
    "__version__",
    "mixture_parameters",
    "routing_statistics",
]
