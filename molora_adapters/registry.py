"""A small named registry shared by every plugin kind (corpus loaders, scorers, LLM backends, ...).

Modelled on peft's ``register_peft_method``: names are validated, duplicates raise unless
``overwrite=True``, and lookups of unknown names list what is available. An entry can also be registered
*lazily* by import path (:meth:`Registry.register_lazy`): the module is imported on first lookup, so that
listing or using the other entries never imports it; that module may register the object itself on import (the
object at the lazy path replaces the entry, anything else is a duplicate). :meth:`Registry.unregister` removes an entry.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


def _path_of(obj: object) -> str:
    """``"module:qualname"`` of a function or class (what a lazy entry names), else ``""``."""
    return f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', '')}"


class Registry(Generic[T]):
    """A mapping from lower-case names to plugin objects.

    Args:
        kind (`str`): what is registered, used in error messages (e.g. ``"corpus loader"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}  # name -> "module:attribute", resolved on first `get`

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(
                f"{self.kind} name must be lower-case letters, digits, '_', '-' or '.', got `{name!r}`."
            )

    def register(self, name: str, obj: T | None = None, *, overwrite: bool = False):
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""
        self._check_name(name)

        def _add(o: T) -> T:
            lazy = self._lazy.get(name)
            taken = (lazy is not None and lazy != _path_of(o)) or (
                name in self._items and self._items[name] is not o
            )
            if taken and not overwrite:
                raise ValueError(
                    f"A {self.kind} named `{name}` is already registered; pass `overwrite=True` to replace it."
                )
            self._lazy.pop(name, None)
            self._items[name] = o
            return o

        return _add(obj) if obj is not None else _add

    def register_lazy(self, name: str, path: str, *, overwrite: bool = False) -> None:
        """Register the object at import path ``"package.module:attribute"`` under ``name``, imported on the
        first :meth:`get`.

        Args:
            name (`str`): the entry name.
            path (`str`): where the object lives; the module is not imported now.
            overwrite (`bool`, *optional*, defaults to `False`): replace an existing entry.
        """
        self._check_name(name)
        module, sep, attr = path.partition(":")
        if not sep or not module or not attr:
            raise ValueError(f"`path` must look like `package.module:attribute`, got {path!r}.")
        if name in self and not overwrite and self._lazy.get(name) != path:
            raise ValueError(
                f"A {self.kind} named `{name}` is already registered; pass `overwrite=True` to replace it."
            )
        self._items.pop(name, None)
        self._lazy[name] = path

    def unregister(self, name: str) -> T | str:
        """Remove ``name`` and return what was registered (the import path of a lazy entry not yet imported).

        Raises:
            KeyError: ``name`` is not registered.
        """
        if name in self._lazy:
            return self._lazy.pop(name)
        if name in self._items:
            return self._items.pop(name)
        raise KeyError(f"Unknown {self.kind} `{name}`. Available: {', '.join(self.names()) or '(none)'}.")

    def get(self, name: str) -> T:
        if name in self._lazy:
            module, _, attr = self._lazy[name].partition(":")
            obj = getattr(importlib.import_module(module), attr)
            self._lazy.pop(name, None)
            self._items[name] = obj
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(
                f"Unknown {self.kind} `{name}`. Available: {', '.join(self.names()) or '(none)'}."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        return sorted({*self._items, *self._lazy})
