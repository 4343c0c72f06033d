"""molora-adapters: Mixture-of-LoRA routing and disentangled stage tuning for AdapterHub `adapters`.

Importing the package registers the plugin with `adapters` (idempotent, version-checked).
"""

from .version import __version__

__all__ = ["__version__"]
