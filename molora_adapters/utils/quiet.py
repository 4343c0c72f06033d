"""Say once what ``adapters`` would repeat on every forward pass.

``adapters`` logs "There are adapters available but none are activated for the forward pass." at the start of
*every* forward of a model that has adapters and no active setup (a saved run whose mixture is not activated, say).
An inference loop would print it once per batch; :func:`inactive_adapters_once` tells the user once, naming the
adapters, and drops the repeats inside its block only (a context variable, so other threads and code outside the
block still see ``adapters``' message).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import warnings
from collections.abc import Iterator

ADAPTERS_LOGGER = "adapters.model_mixin"
INACTIVE_MESSAGE = "There are adapters available but none are activated"

_quiet = contextvars.ContextVar("molora_quiet_inactive_adapters", default=False)


class _DropInactiveAdapters(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_quiet.get() and str(record.msg).startswith(INACTIVE_MESSAGE))


_FILTER = _DropInactiveAdapters()


def warn_if_adapters_inactive(model, stacklevel: int = 2) -> bool:
    """Warn once (a ``UserWarning``) when ``model`` has adapters but none is active; returns whether it did."""
    has = getattr(model, "has_adapters", None)
    if has is None or not has() or getattr(model, "active_adapters", None):
        return False
    names = sorted(getattr(getattr(model, "adapters_config", None), "adapters", {}) or [])
    warnings.warn(
        f"The model has adapters ({', '.join(names) or 'unnamed'}) but none is active, so it runs with its base "
        "weights; call `model.set_active_adapters(...)` (or `set_active_adapters` on a mixture) to use them.",
        UserWarning,
        stacklevel=stacklevel,
    )
    return True


@contextlib.contextmanager
def inactive_adapters_once() -> Iterator[None]:
    """Inside the block, drop ``adapters``' per-forward "none are activated" message (warn once beforehand with
    :func:`warn_if_adapters_inactive`)."""
    logger = logging.getLogger(ADAPTERS_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)
