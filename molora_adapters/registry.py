"""A small named registry shared by every plugin kind (corpus loaders, scorers, LLM backends, ...).

Modelled on peft's ``register_peft_method``: names are validated, duplicates raise unless
``overwrite=True``, and lookups of unknown names list what is available.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


class Registry(Generic[T]):
    """A mapping from lower-case names to plugin objects.

    Args:
        kind (`str`): what is registered, used in error messages (e.g. ``"corpus loader"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None, *, overwrite: bool = False):
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(
                f"{self.kind} name must be lower-case letters, digits, '_', '-' or '.', got `{name!r}`."
            )

        def _add(o: T) -> T:
            if name in self._items and not overwrite and self._items[name] is not o:
                raise ValueError(
                    f"A {self.kind} named `{name}` is already registered; pass `overwrite=True` to replace it."
                )
            self._items[name] = o
            return o

        return _add(obj) if obj is not None else _add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(
                f"Unknown {self.kind} `{name}`. Available: {', '.join(sorted(self._items)) or '(none)'}."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)
