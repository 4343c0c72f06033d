"""The one rule by which molora_adapters changes ``adapters`` objects (used by :mod:`molora_adapters._integration`
and by the X-STA part of the seam, :mod:`molora_adapters.xsta.seam`).

* :func:`patch` wraps an existing attribute once (idempotent through a marker) and raises ``ImportError`` when the
  target is missing, so an ``adapters`` release that renames it fails loudly instead of silently skipping;
* :func:`add_method` adds a new attribute and refuses to shadow anything the class (or a base) already defines;
* :func:`check_adapters_version` guards the supported ``adapters`` range.

This module imports nothing from the package, so every layer may use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import adapters
from packaging.version import Version

__all__ = [
    "MARK",
    "SUPPORTED_ADAPTERS_RANGE",
    "add_method",
    "check_adapters_version",
    "copy_methods",
    "patch",
]

SUPPORTED_ADAPTERS_RANGE = (Version("1.3.0"), Version("1.4.0"))
MARK = "__molora_patched__"
MAKERS = "__molora_makers__"  # the wrappers applied to an attribute, outermost last


def _supported() -> str:
    low, high = SUPPORTED_ADAPTERS_RANGE
    return f"adapters>={low},<{high}"


def check_adapters_version(version: str | None = None) -> None:
    """Raise ``ImportError`` unless ``adapters`` (or ``version``) is in the supported range."""
    found = Version(version or adapters.__version__)
    low, high = SUPPORTED_ADAPTERS_RANGE
    if not low <= found < high:
        raise ImportError(
            f"molora_adapters supports {_supported()}, but adapters {found} is installed. "
            f"Install a supported version: pip install '{_supported()}'."
        )


def patch(owner: type, name: str, make: Callable[[Any], Any], *, inherited: bool = False) -> None:
    """Replace ``owner.name`` by ``make(original)`` once (idempotent per ``make``, through :data:`MAKERS`).

    Args:
        owner (`type`): the ``adapters`` class.
        name (`str`): the attribute to wrap.
        make (`Callable`): ``original -> replacement``.
        inherited (`bool`, *optional*, defaults to `False`): the original may come from a base class (the
            replacement is still set on ``owner``).

    Raises:
        ImportError: ``owner`` defines no ``name`` (an ``adapters`` release renamed or moved it).
    """
    original = getattr(owner, name, None) if inherited else owner.__dict__.get(name)
    if original is None:
        raise ImportError(
            f"molora_adapters wraps `{owner.__module__}.{owner.__qualname__}.{name}`, which adapters "
            f"{adapters.__version__} does not define; install a supported version ({_supported()})."
        )
    makers = getattr(original, MAKERS, ())
    if make in makers:
        return
    patched = make(original)
    setattr(patched, MARK, True)
    setattr(patched, MAKERS, (*makers, make))  # several wrappers may stack on one attribute (seam + X-STA)
    setattr(owner, name, patched)


def add_method(owner: type, name: str, value: Any, *, source: str | None = None) -> None:
    """Add ``value`` as ``owner.name`` unless ``owner`` (or a base) already defines ``name`` (idempotent).

    Args:
        owner (`type`): the ``adapters`` class.
        name (`str`): the new attribute.
        value: a function, property or class attribute; functions (and a property's getter) get :data:`MARK`.
        source (`str`, *optional*): where ``value`` comes from, for the error message.

    Raises:
        ImportError: ``name`` exists and is not one of ours (marked with :data:`MARK`).
    """
    existing = getattr(owner, name, None)
    if existing is value:
        return
    if existing is not None and not _ours(existing):
        raise ImportError(
            f"`{owner.__qualname__}.{name}` already exists in adapters {adapters.__version__}; "
            f"molora_adapters will not replace it{f' with `{source}`' if source else ''}."
        )
    target = value.fget if isinstance(value, property) else value
    if callable(target):
        setattr(target, MARK, True)
    setattr(owner, name, value)


def _ours(value: Any) -> bool:
    target = value.fget if isinstance(value, property) else value
    return bool(getattr(target, MARK, False))


def copy_methods(mixin: type, target: type) -> None:
    """Attach ``mixin``'s methods to ``target`` through :func:`add_method` (clash check included)."""
    for attr, value in vars(mixin).items():
        if not attr.startswith("__"):
            add_method(target, attr, value, source=f"{mixin.__qualname__}.{attr}")


def resolve(path: str) -> Any:
    """The object at ``"package.module:attribute[.attribute]"`` (imported now)."""
    module, _, attrs = path.partition(":")
    obj: Any = importlib.import_module(module)
    for attr in attrs.split("."):
        obj = getattr(obj, attr)
    return obj


from . import _plugin  # noqa: E402  (at the end: registering needs this module complete)

_plugin.register_if_pending(__name__)  # `adapters` may have been first imported by this module
