"""A deliberately naive mixture forward: a Python loop over experts, each a separate LoRA forward.

It is the correctness reference of the tests and the "naive loop" baseline of ``benchmarks/bench_mixture.py``;
it shares no routing code with :mod:`molora_adapters.mixture.layer` (top-k by sorting, gates by masking).
Install it with :func:`use_reference_forward`.
"""

from __future__ import annotations

import torch
from adapters.context import ForwardContext
from adapters.methods.lora import LoRALinear

from .config import Granularity
from .layer import context_rows, use_composition
from .router import layer_key


def naive_compose_mixture(layer: LoRALinear, adapter_setup, state, lvl: int = 0):
    """Reference of ``compose_mixture_lora``: route, then loop over experts and add each one's weighted output."""
    context = ForwardContext.get_context()
    routers = context.mixture_routers[adapter_setup.name]
    key = layer_key(layer)
    if key not in routers:
        return state
    router, config = routers[key], routers.config
    x = state.layer_input
    expert_in = state.hidden_states if state.hidden_states is not None else x
    mask = getattr(context, "mixture_attention_mask", None)
    if mask is not None:  # inside BatchSplit / Parallel: the rows of the batch this layer input covers
        rows, _ = context_rows(context, x.shape[0], mask.shape[0])
        mask = mask[rows] if rows is not None else mask

    if config.granularity is Granularity.TOKEN:
        router_in = x
    elif mask is not None and tuple(mask.shape) == tuple(x.shape[:2]):
        m = mask.to(x.dtype)[..., None]
        router_in = (x * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1)
    else:
        router_in = x.mean(1, keepdim=True)
    logits = (router_in.to(router.weight.dtype) @ router.weight.t()).float() / config.temperature
    present = torch.tensor([e in layer.loras for e in config.experts], device=x.device)
    logits = logits.masked_fill(~present, float("-inf"))

    if config.granularity is Granularity.LANGUAGE:
        lang = context.language_ids
        idx = (
            lang
            if isinstance(lang, torch.Tensor)
            else torch.tensor([config.expert_index(str(v)) for v in lang])
        )
        rows, _ = context_rows(context, x.shape[0], idx.shape[0])
        idx = idx[rows] if rows is not None else idx
        gates = torch.nn.functional.one_hot(idx.long().to(x.device), config.n_experts).float()[:, None, :]
    else:
        probs = logits.softmax(-1)
        k = min(adapter_setup.top_k or config.top_k, int(present.sum()))
        order = probs.argsort(dim=-1, descending=True)
        keep = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order[..., :k], True)
        gates = probs * keep
        if config.renormalize:
            gates = gates / gates.sum(-1, keepdim=True)

    out = torch.zeros_like(state.layer_output)
    for e, expert in enumerate(config.experts):  # the naive loop
        if expert not in layer.loras:
            continue
        lora = layer.loras[expert]
        delta = lora.lora_dropout(expert_in) @ lora.lora_A.t() @ lora.lora_B.t() * lora.scaling
        out = out + gates[..., e : e + 1].to(delta.dtype) * delta
    last = next(e for e in config.experts if e in layer.loras)
    return state._replace(hidden_states=out, last=last)


def use_reference_forward():
    """Context manager: within it, every mixture layer of the current thread runs :func:`naive_compose_mixture`
    instead of the fast path."""
    return use_composition(naive_compose_mixture)
