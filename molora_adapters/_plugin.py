"""When the plugin is registered with ``adapters``: as soon as both this package and ``adapters`` are imported.

``import molora_adapters`` stays light (no torch, no ``adapters``), so that ``molora --help`` is fast. If ``adapters``
is already imported, the plugin is registered at once; otherwise an import hook (:func:`when_imported`, also used for
the ``transformers`` pipeline registrations) registers it right after ``adapters`` itself is imported. So
``import molora_adapters`` followed by any ``adapters`` model keeps ``model.add_adapter_mixture(...)`` and the other
mixture methods, whatever the import order.

When ``adapters`` is first imported by the modules that the registration itself needs (:mod:`._integration`,
:mod:`._patching` and :mod:`.mixture`, still half-initialised at that point), the registration is deferred to the end
of their import (their last line calls :func:`register_if_pending`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

_state = {"registered": False, "pending": False}

# Modules that `register_plugin` imports; while one of them is being initialised, registering would be circular.
_NEEDED_PREFIXES = ("molora_adapters._integration", "molora_adapters._patching", "molora_adapters.mixture")


def register_plugin() -> None:
    """Register ``Mixture``, the model methods and the built-in head types with ``adapters`` (idempotent)."""
    if _state["registered"]:
        return
    from . import _integration

    # Declared by path: the OIE stack is imported only when a model adds an OIE head.
    _integration.register_head_type(
        "oie", "molora_adapters.oie.heads:OIEHead", adder="molora_adapters.oie.heads:add_oie_head"
    )
    _integration.register()
    _state["registered"] = True
    _state["pending"] = False


def _initializing(exclude: str | None) -> bool:
    for name, module in list(sys.modules.items()):
        if name != exclude and name.startswith(_NEEDED_PREFIXES):
            if getattr(getattr(module, "__spec__", None), "_initializing", False):
                return True
    return False


def register_if_pending(caller: str | None = None) -> None:
    """Run a registration deferred by the import hook, unless a module it needs is still being imported.

    Args:
        caller (`str`, *optional*): the module calling at the end of its own import (not counted as in progress).
    """
    if _state["pending"] and not _initializing(caller):
        register_plugin()


class _LoaderWrapper(importlib.abc.Loader):
    """Runs a module's own loader, then the callbacks waiting for it; restores the original loader on the spec."""

    def __init__(self, spec, loader) -> None:
        self._spec, self._loader = spec, loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._spec.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        callbacks = _HOOK.waiting.pop(self._spec.name, [])
        if not _HOOK.waiting and _HOOK in sys.meta_path:
            sys.meta_path.remove(_HOOK)
        for callback in callbacks:
            callback()


class _PostImportHook(importlib.abc.MetaPathFinder):
    """One finder for every module some callback waits for; it steps aside once nothing waits."""

    def __init__(self) -> None:
        self.waiting: dict[str, list] = {}

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.waiting:
            return None
        sys.meta_path.remove(self)  # keeps the lookup below from finding this hook again
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _LoaderWrapper(spec, spec.loader)
        return spec


_HOOK = _PostImportHook()


def when_imported(name: str, callback) -> None:
    """Call ``callback()`` now if module ``name`` is imported, else right after it is (once).

    Args:
        name (`str`): a module name, e.g. ``"adapters"`` or ``"transformers.pipelines"``.
        callback (`Callable[[], None]`): what to run.
    """
    if name in sys.modules:
        callback()
        return
    _HOOK.waiting.setdefault(name, []).append(callback)
    if _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


_PIPELINES_BASE = "molora_adapters.utils.hf_pipelines"
_deferred_pipelines: list[str] = []


def _half_imported(name: str) -> bool:
    module = sys.modules.get(name)
    return module is not None and bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _register_pipelines(module: str, base_ready: bool = False) -> None:
    if not base_ready and _half_imported(_PIPELINES_BASE):
        _deferred_pipelines.append(module)  # run at the end of the base module (`run_deferred_pipelines`)
    elif not _half_imported(module):  # a half-imported `module` registers on its own last line
        importlib.import_module(module).register()


def register_pipelines_when_imported(module: str) -> None:
    """Call ``module.register()`` (a ``transformers`` pipeline registration) once ``transformers.pipelines`` is
    imported. That import can happen inside our own pipeline modules; those register on their last line, and
    registrations that need the half-imported shared base wait for its end (:func:`run_deferred_pipelines`).

    Args:
        module (`str`): the module that defines ``register()``, e.g. ``"molora_adapters.oie.hf_pipeline"``.
    """
    when_imported("transformers.pipelines", lambda: _register_pipelines(module))


def run_deferred_pipelines() -> None:
    """Run the registrations deferred while the shared pipeline base was being imported (called on its last line)."""
    while _deferred_pipelines:
        _register_pipelines(_deferred_pipelines.pop(0), base_ready=True)


def _adapters_imported() -> None:
    _state["pending"] = True
    register_if_pending()


def install() -> None:
    """Register the plugin now if ``adapters`` is imported, else when it is (called once, by the package root)."""
    if not _state["registered"] and _adapters_imported not in _HOOK.waiting.get("adapters", []):
        when_imported("adapters", _adapters_imported)
