"""molora-adapters: Mixture-of-LoRA routing and disentangled stage tuning for AdapterHub `adapters`.

Importing the package is light (no torch, no ``adapters``) and registers the plugin with ``adapters`` (idempotent,
version-checked) as soon as ``adapters`` is imported, before or after this package (see :mod:`._plugin`). The public
names below load :mod:`.mixture` on first access.
"""

from __future__ import annotations

import importlib

from . import _plugin
from .version import __version__

_LAZY = {
    "Granularity": ".mixture",
    "Mixture": ".mixture",
    "MixtureConfig": ".mixture",
    "mixture_parameters": ".mixture",
    "routing_statistics": ".mixture",
}

__all__ = [
    "Granularity",
    "Mixture",
    "MixtureConfig",
    "__version__",
    "mixture_parameters",
    "routing_statistics",
]

_plugin.install()


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        _plugin.register_if_pending()
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
