"""Shared invariant checks (peft's ``PeftCommonTester`` is the model): each feature's test file is a thin,
parametrised wrapper around the ``_test_*`` functions here.

Conventions: every check takes the object under test (and what it needs to rebuild it) and asserts an exact
invariant; no check branches on the case, and no check has a per-case tolerance.

Sections:

* **config round trips**: dict, JSON, copy and pickle, for every config class of the package (the case table
  is :data:`tests.test_configs.CONFIG_CASES`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from collections.abc import Callable
from typing import Any

# ---- config round trips --------------------------------------------------------------------------------------------


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config's own ``to_dict()``, else ``dataclasses.asdict`` (the documented serialisation of a dataclass)."""
    to_dict = getattr(config, "to_dict", None)
    return to_dict() if callable(to_dict) else dataclasses.asdict(config)


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """The class's own ``from_dict`` (or ``from_kwargs``), else its constructor."""
    if hasattr(cls, "from_dict"):
        return cls.from_dict(dict(data))
    if hasattr(cls, "from_kwargs"):
        return cls.from_kwargs(**data)
    return cls(**data)


def _test_config_dict_round_trip(config: Any) -> None:
    data = config_to_dict(config)
    assert isinstance(data, dict)
    rebuilt = config_from_dict(type(config), data)
    assert rebuilt == config
    assert config_to_dict(rebuilt) == data  # and the dict is stable


def _test_config_json_round_trip(config: Any) -> None:
    text = json.dumps(config_to_dict(config), sort_keys=True)
    rebuilt = config_from_dict(type(config), json.loads(text))
    assert rebuilt == config
    assert json.dumps(config_to_dict(rebuilt), sort_keys=True) == text


def _test_config_copy_round_trip(config: Any) -> None:
    assert copy.copy(config) == config
    deep = copy.deepcopy(config)
    assert deep == config and type(deep) is type(config)


def _test_config_pickle_round_trip(config: Any) -> None:
    rebuilt = pickle.loads(pickle.dumps(config))
    assert rebuilt == config and type(rebuilt) is type(config)


CONFIG_ROUND_TRIPS: dict[str, Callable[[Any], None]] = {
    "dict": _test_config_dict_round_trip,
    "json": _test_config_json_round_trip,
    "copy": _test_config_copy_round_trip,
    "pickle": _test_config_pickle_round_trip,
}
"""Every round trip a config class must pass, by name."""


def config_classes(package: str = "molora_adapters") -> set[type]:
    """Every dataclass of ``package`` that is a configuration: its name ends in ``Config`` or ``Spec``, or it is
    a declared settings class (``Stage``, ``PromptTemplate``). Importing every sub-module finds them all."""
    import importlib
    import pkgutil

    root = importlib.import_module(package)
    found: set[type] = set()
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if ".metrics." in info.name:  # `evaluate` metric scripts, loaded by `evaluate` itself
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and dataclasses.is_dataclass(value)
                and value.__module__ == module.__name__
                and (
                    value.__name__.endswith(("Config", "Spec"))
                    or value.__name__ in ("Stage", "PromptTemplate")
                )
            ):
                found.add(value)
    return found
