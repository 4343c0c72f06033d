"""The mixture forward of one adapted linear layer: routing, then all experts as stacked matmuls in rank space.

For ``E`` present experts with ranks ``r_e`` (``R = sum r_e``), input ``x`` ``(..., D_in)``:

1. ``h = dropout(x) @ A_cat.T`` with ``A_cat = cat(A_e)`` ``(R, D_in)``: one matmul for all experts;
2. ``h = h * g_rank``: each expert's gate (times its LoRA scaling) broadcast over its own ``r_e`` rank columns;
3. ``y = h @ B_cat.T`` with ``B_cat = cat(B_e, dim=1)`` ``(D_out, R)``: one matmul back.

Unselected experts have gate exactly 0, so they contribute exactly 0 and receive exactly zero gradient.
No Python loop over experts or tokens runs in this path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from adapters.context import ForwardContext

from .config import Granularity, MixtureConfig
from .losses import language_supervision_loss, load_balancing_loss, router_z_loss
from .router import Router, layer_key

if TYPE_CHECKING:
    from adapters.methods.lora import LoRALinear, LoRAState

    from .composition import Mixture


def sparse_top_k_gates(
    probs: torch.Tensor, top_k: int, n_present: int, renormalize: bool = True
) -> torch.Tensor:
    """Keep the ``top_k`` largest probabilities of ``probs`` ``(..., E)`` (renormalised); the rest become exactly 0.

    With ``top_k >= n_present`` this is the dense softmax mixture itself.
    """
    if top_k >= n_present:
        return probs
    vals, idx = probs.topk(top_k, dim=-1)
    if renormalize:
        vals = vals / vals.sum(dim=-1, keepdim=True)
    return torch.zeros_like(probs).scatter_(-1, idx, vals)


def _token_mask(context, x: torch.Tensor) -> torch.Tensor | None:
    """``(B, T)`` bool attention mask matching ``x`` ``(B, T, D)``, or None when unknown or mismatched."""
    mask = getattr(context, "mixture_attention_mask", None)
    if mask is None or x.dim() != 3 or tuple(mask.shape) != tuple(x.shape[:2]):
        return None
    return mask.to(device=x.device).bool()


def _language_index(context, config: MixtureConfig, name: str, device: torch.device) -> torch.Tensor | None:
    """``(B,)`` expert index per example from the ``language_ids`` forward argument, converted once per forward."""
    language_ids = getattr(context, "language_ids", None)
    if language_ids is None:
        return None
    cache = context.mixture_language_index
    if name not in cache:
        if isinstance(language_ids, torch.Tensor):
            idx = language_ids.long()
            if idx.numel() and (idx.min() < 0 or idx.max() >= config.n_experts):
                raise ValueError(
                    f"`language_ids` must index the {config.n_experts} experts {config.experts}, got {idx.tolist()}."
                )
        else:
            idx = torch.tensor([config.expert_index(str(lang)) for lang in language_ids], dtype=torch.long)
        cache[name] = idx.to(device)
    return cache[name]


def _route(
    router: Router, config: MixtureConfig, top_k: int, x: torch.Tensor, context, name: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Gates ``(B, T or 1, E)`` (or ``(N, E)`` for 2-D input), router logits, routing probabilities (None for hard
    language routing), decision mask and language targets."""
    granularity = config.granularity
    mask = _token_mask(context, x)
    # language ids matter only for hard routing and for the language-supervision loss
    needs_lang = granularity is Granularity.LANGUAGE or (
        config.language_loss_coef > 0 and getattr(context, "output_router_logits", False)
    )
    lang = _language_index(context, config, name, x.device) if needs_lang and x.dim() == 3 else None
    if granularity is Granularity.TOKEN:
        router_in, decision_mask = x, mask
    else:
        if x.dim() != 3:
            raise ValueError(
                f"granularity={granularity.value!r} needs (batch, seq, hidden) inputs, got {tuple(x.shape)}."
            )
        if mask is None:
            router_in = x.mean(dim=1, keepdim=True)  # (B, 1, D)
        else:
            w = mask.to(x.dtype).unsqueeze(-1)  # (B, T, 1)
            router_in = (x * w).sum(dim=1, keepdim=True) / w.sum(dim=1, keepdim=True).clamp_min(1.0)
        decision_mask = None
    logits = router(router_in) / config.temperature  # (B, T or 1, E) float32

    if granularity is Granularity.LANGUAGE:
        if lang is None:
            raise ValueError(
                "This mixture routes by language (granularity='language'): pass `language_ids` to the forward, "
                "one language code or expert index per example."
            )
        probs = None
        gates = torch.zeros_like(logits).scatter_(-1, lang.view(-1, 1, 1), 1.0)  # (B, 1, E) hard routing
    else:
        n_present = len(router.present_experts)
        probs = logits.softmax(dim=-1)
        gates = sparse_top_k_gates(probs, min(top_k, n_present), n_present, config.renormalize)
    return gates, logits, probs, decision_mask, lang


def _record_routing(
    context, key: str, config: MixtureConfig, n_present: int, gates, logits, probs, decision_mask, lang
) -> None:
    """Store the layer's router logits and add its weighted auxiliary loss to the forward context.

    ``probs`` are the routing probabilities ``_route`` already computed (None for hard language routing).
    """
    flat_logits = logits.reshape(-1, logits.shape[-1])  # (N, E)
    flat_mask = decision_mask.reshape(-1) if decision_mask is not None else None
    context.router_logits[key] = flat_logits
    aux = flat_logits.new_zeros(())
    if config.load_balancing_coef > 0 and probs is not None:
        flat_probs = probs.reshape(-1, probs.shape[-1])  # (N, E)
        selected = (gates.reshape(-1, gates.shape[-1]) > 0).float()
        aux = aux + config.load_balancing_coef * load_balancing_loss(
            flat_probs, selected, n_present, flat_mask
        )
    if config.router_z_loss_coef > 0:
        aux = aux + config.router_z_loss_coef * router_z_loss(flat_logits, flat_mask)
    if config.language_loss_coef > 0 and lang is not None:
        per_decision = logits.shape[1] if logits.dim() == 3 else 1
        target = lang.repeat_interleave(per_decision)  # (N,)
        aux = aux + config.language_loss_coef * language_supervision_loss(flat_logits, target, flat_mask)
    context.mixture_aux_losses.append(aux)


def compose_mixture_lora(
    layer: LoRALinear, adapter_setup: Mixture, state: LoRAState, lvl: int = 0
) -> LoRAState:
    """``LoRALinear`` composition function for a :class:`Mixture` block (see module docstring)."""
    context = ForwardContext.get_context()
    mixtures = getattr(context, "mixture_routers", None) if context is not None else None
    if mixtures is None or adapter_setup.name not in mixtures:
        raise RuntimeError(
            f"No routers found for mixture `{adapter_setup.name}`. Add it with `model.add_adapter_mixture(...)` and "
            "call the model itself (not a submodule) so that adapters' ForwardContext is set up."
        )
    routers = mixtures[adapter_setup.name]
    key = layer_key(layer)
    if key not in routers:  # none of the experts adapts this layer
        return state
    router: Router = routers[key]
    config: MixtureConfig = routers.config
    x = state.layer_input
    expert_in = state.hidden_states if state.hidden_states is not None else x

    loras = [layer.loras[name] for name in router.present_experts]
    lora_a = (
        torch.cat([lora.lora_A for lora in loras], dim=0) if len(loras) > 1 else loras[0].lora_A
    )  # (R, D_in)
    lora_b = (
        torch.cat([lora.lora_B for lora in loras], dim=1) if len(loras) > 1 else loras[0].lora_B
    )  # (D_out, R)

    gates, logits, probs, decision_mask, lang = _route(
        router, config, adapter_setup.top_k, x, context, adapter_setup.name
    )
    if getattr(context, "output_router_logits", False):
        n_present = len(router.present_experts)
        _record_routing(context, key, config, n_present, gates, logits, probs, decision_mask, lang)

    layout = router.layout(x.device)
    if not router.all_present:
        gates = gates.index_select(-1, layout.expert_index)  # (..., E_present)
    gates = (gates * layout.expert_scaling).to(expert_in.dtype)  # LoRA scaling folded into the gates

    lora_a, lora_b = lora_a.to(expert_in.dtype), lora_b.to(expert_in.dtype)  # no-ops unless dtypes differ
    h = loras[0].lora_dropout(expert_in) @ lora_a.t()  # (..., R)
    if router.equal_ranks:
        # (..., E_present, r) * (..., E_present, 1): gates applied per expert in rank space
        h = (h.unflatten(-1, (-1, router.rank)) * gates.unsqueeze(-1)).flatten(-2)
    else:
        h = h * gates.index_select(-1, layout.rank_owner)  # (..., R)
    hidden_states = h @ lora_b.t()  # (..., D_out)
    return state._replace(hidden_states=hidden_states, last=router.present_experts[0])


def compose_mixture_unsupported(layer, adapter_setup: Mixture, state, lvl: int = 0):
    """Composition function for non-LoRA adapter layers: a mixture has no experts there, so it is a no-op."""
    if set(layer.adapter_modules.keys()).isdisjoint(adapter_setup.flatten()):
        return state
    raise NotImplementedError(
        f"`Mixture` experts must be LoRA adapters; {type(layer).__name__} holds some of {adapter_setup.children}."
    )
