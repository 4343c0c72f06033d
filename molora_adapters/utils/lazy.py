"""PEP 562 lazy exports for package ``__init__`` modules: a public name's module is imported on first access.

Packages on the ``molora`` command line's import path use it, so that ``molora <cmd> --help`` imports neither torch
nor ``adapters``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a package whose public names live in its sub-modules.

    Args:
        package (`str`): the package's ``__name__``.
        names (`Mapping[str, str]`): public name -> relative module (``".heads"``) that defines it.
    """
    module = importlib.import_module(package)

    # Public names that are also sub-module names (`projection.project`, a function of `.pipeline`): importing the
    # sub-module binds the package attribute to the module, so they are re-bound after every lazy import.
    shadowed = {n: t for n, t in names.items() if t != f".{n}"}

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name], package), name)
        setattr(module, name, value)  # later lookups skip this function
        for other, target in shadowed.items():
            if isinstance(vars(module).get(other), types.ModuleType):
                source = sys.modules.get(importlib.util.resolve_name(target, package))
                if source is not None and hasattr(source, other):
                    setattr(module, other, getattr(source, other))
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(module), *names})

    return __getattr__, __dir__
