"""The X-STA part of the seam into ``adapters``, under the rule of :mod:`molora_adapters._patching`.

* :func:`install_attention_dispatch`: the GDKS dispatch in BERT / RoBERTa / XLM-R self-attention
  (:data:`ATTENTION_CLASSES`), patched the first time a model gets an X-STA setup (idempotent; a process that never
  uses X-STA runs ``adapters``' attention unchanged);
* :func:`paired_forward_context`: the forward-context hook of ``xsta_paired=True`` (declared in
  :data:`molora_adapters._integration.CONTEXT_HOOKS`), which validates the call before any work;
* :func:`restore_xsta`: rebuilds a saved setup when ``from_pretrained`` re-initialises the adapters (declared in
  :data:`molora_adapters._integration.CONFIG_SECTIONS`).
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import torch
from adapters.context import ForwardContext
from torch import nn

from .._patching import patch
from .config import XSTAConfig
from .layer import GDKS_ATTR, PairState, gdks_attention, pair_languages

__all__ = [
    "ATTENTION_CLASSES",
    "active_xsta",
    "begin_paired_forward",
    "install_attention_dispatch",
    "paired_forward_context",
    "restore_xsta",
]

ATTENTION_CLASSES = (
    ("adapters.models.bert.modeling_bert", "BertSelfAttentionWithAdapters"),
    ("adapters.models.bert.modeling_bert", "BertSdpaSelfAttentionWithAdapters"),
    ("adapters.models.roberta.modeling_roberta", "RobertaSelfAttentionWithAdapters"),
    ("adapters.models.roberta.modeling_roberta", "RobertaSdpaSelfAttentionWithAdapters"),
    ("adapters.models.xlm_roberta.modeling_xlm_roberta", "XLMRobertaSelfAttentionWithAdapters"),
    ("adapters.models.xlm_roberta.modeling_xlm_roberta", "XLMRobertaSdpaSelfAttentionWithAdapters"),
)
"""The self-attention classes whose ``forward`` dispatches to GDKS at the X-STA layer."""


def _make_attention_forward(original):
    @functools.wraps(original)
    def forward(self, hidden_states, *args, **kwargs):
        context = ForwardContext.get_context()
        state = getattr(context, "xsta_state", None) if context is not None else None
        if state is not None and state.gdks is not None and state.gdks.layer == self.layer_idx:
            return gdks_attention(self, hidden_states, state, context)
        return original(self, hidden_states, *args, **kwargs)

    return forward


def install_attention_dispatch() -> None:
    """Patch the self-attention ``forward`` of :data:`ATTENTION_CLASSES` (idempotent).

    Raises:
        ImportError: an ``adapters`` release renamed one of them.
    """
    for module_name, cls_name in ATTENTION_CLASSES:
        cls = getattr(importlib.import_module(module_name), cls_name, None)
        if cls is None:
            raise ImportError(
                f"molora_adapters' X-STA patches `{module_name}.{cls_name}`, which adapters lacks."
            )
        patch(cls, "forward", _make_attention_forward)


def active_xsta(model: nn.Module) -> str | None:
    """The name of the active X-STA head of ``model``, or `None`."""
    from .head import XSTAQAHead

    heads = getattr(model, "heads", None)
    head = getattr(model, "active_head", None)
    if isinstance(head, list):
        head = head[0] if len(head) == 1 else None
    if heads is None or head is None or head not in heads:
        return None
    return head if isinstance(heads[head], XSTAQAHead) else None


def begin_paired_forward(
    model: nn.Module, context: Any, attention_mask: torch.Tensor | None, input_ids: Any
) -> PairState:
    """Validate a paired call and build its :class:`PairState` (called from the forward context)."""
    install_attention_dispatch()  # a head loaded alone (`load_head`) has no setup that installed it
    name = active_xsta(model)
    if name is None:
        raise ValueError(
            "`xsta_paired=True` needs an active X-STA head; add one with `model.add_xsta(name)` and activate it "
            "with `model.active_head = name`."
        )
    ref = attention_mask if isinstance(attention_mask, torch.Tensor) else input_ids
    if not isinstance(ref, torch.Tensor) or ref.dim() != 2:
        raise ValueError("A paired X-STA call needs `input_ids` or `attention_mask` of shape (2B, L).")
    source, target = pair_languages(getattr(context, "language_ids", None), ref.shape[0])
    store = getattr(model.base_model, GDKS_ATTR, None)
    gdks = store[name] if store is not None and name in store else None
    mask = (
        attention_mask.bool()
        if isinstance(attention_mask, torch.Tensor)
        else torch.ones_like(ref, dtype=torch.bool)
    )
    return PairState(gdks, mask, source, target)


def paired_forward_context(model: nn.Module, context: Any, args: tuple, kwargs: dict) -> None:
    """Forward-context hook of ``xsta_paired=True``: sets ``context.xsta_state`` (see :func:`begin_paired_forward`)."""
    input_ids = kwargs.get("input_ids", args[0] if args else None)
    context.xsta_state = begin_paired_forward(
        model, context, getattr(context, "mixture_attention_mask", None), input_ids
    )


def restore_xsta(model: nn.Module, name: str, saved: dict[str, Any]) -> None:
    """Rebuild X-STA setup ``name`` from its saved config unless the model already has it."""
    store = getattr(model.base_model, GDKS_ATTR, None)
    if store is None or name not in store:
        model._register_xsta(name, XSTAConfig.from_dict(saved))
