"""Registering a custom prediction-head class on a flex-head `adapters` model, shared by the OIE and X-STA heads."""

from __future__ import annotations

from typing import Any


def register_custom_head_class(model: Any, head_type: str, head_class: type) -> None:
    """Register ``head_class`` as custom head type ``head_type`` on ``model`` (idempotent).

    Args:
        model: a flex-head `adapters` model (e.g. from ``AutoAdapterModel``).
        head_type (`str`): the custom head type name.
        head_class (`type`): the head class.

    Raises:
        TypeError: ``model`` has no prediction heads.
        ValueError: another class is already registered under ``head_type``.
    """
    if not hasattr(model, "register_custom_head"):
        raise TypeError(
            f"`model` ({type(model).__name__}) has no prediction heads; load it with `adapters.AutoAdapterModel`."
        )
    existing = model.custom_heads.get(head_type)
    if existing is not None and existing is not head_class:
        raise ValueError(
            f"Custom head type `{head_type}` is already registered as {existing!r}; "
            "remove it from `model.custom_heads` first."
        )
    model.register_custom_head(head_type, head_class)
