"""The stacked expert weights of one adapted linear layer, built per forward in training and cached for inference.

A mixture keeps adapters' own per-expert ``LoRA`` modules (so saving, loading and averaging stay adapters'), and
runs them as stacked matmuls. The stacks are:

- dense: ``cat(A_e)`` ``(R, D)``, optionally below the router weight ``(E, D)`` for the fused router + A matmul,
  and ``cat(B_e, dim=1)`` ``(O, R)`` with each expert's LoRA scaling folded in, so that the gates stay plain
  routing weights and no activation-sized multiply is spent on the scaling;
- sparse: ``A_e.T`` ``(E, D, r)`` and scaled ``B_e.T`` ``(E, r, O)``.

Under ``torch.no_grad()`` / ``inference_mode`` (or when no weight requires grad) the stacks of a layer are cached
on its router, keyed by each weight's version counter and data pointer: in-place updates (``load_state_dict``,
``add_`` under ``no_grad``) and new storage (``.to()``, ``assign=True`` loads) rebuild them. With gradients the
stacks are rebuilt every forward, inside the graph, so each expert gets its own gradient, and that forward drops
the layer's cached stacks: an optimizer can change weights only after a forward that records their gradients, and
fused optimizers update weights without bumping their version counters. So the cache is per layer, with no global
state. Weights rewritten through ``.data`` (bypassing version counters) or stepped from gradients computed outside
the mixture forward are not seen: call :func:`clear_weight_cache` after such edits.

The lookups read ``nn.Module``'s ``_modules`` / ``_parameters`` dicts directly: ``Module.__getattr__`` costs
~0.5 us a call, and a mixture layer makes ~4 E of them per forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

_CACHE_ATTR = "_molora_stacked_weights"


def clear_weight_cache(model: torch.nn.Module) -> None:
    """Drop every cached expert stack of ``model`` (needed only after rewriting expert or router weights through
    ``.data``, which bypasses the version counters the cache checks).

    Args:
        model (`torch.nn.Module`): a model with mixtures (or any module holding their routers).
    """
    for module in model.modules():
        module.__dict__.pop(_CACHE_ATTR, None)


def expert_modules(layer: torch.nn.Module, router) -> list:
    """The ``LoRA`` modules of ``router``'s present experts in ``layer`` (a ``LoRALinear``), in router order."""
    loras = layer._modules["loras"]._modules
    return [loras[name] for name in router.present_experts]


def _a(lora) -> torch.Tensor:
    return lora._parameters["lora_A"]


def _b(lora) -> torch.Tensor:
    return lora._parameters["lora_B"]


def _expert_params(loras: list) -> list[torch.Tensor]:
    """Every expert's ``lora_A``, then every expert's ``lora_B``."""
    return [_a(lora) for lora in loras] + [_b(lora) for lora in loras]


def cached(owner: torch.nn.Module, name: str, params: Sequence[torch.Tensor], build: Callable[[], object]):
    """``build()`` (stacks of ``params``), cached on ``owner`` under ``name`` while no gradient is recorded.

    The cache entry holds views of the weights it was built from, so their memory cannot be reused by new weights
    with the same data pointer and version (e.g. after ``model.to(dtype)``) while the entry lives. A call that
    records gradients builds afresh and drops every entry of ``owner`` (see module docstring).
    """
    if torch.is_grad_enabled() and any(p.requires_grad for p in params):
        owner.__dict__.pop(
            _CACHE_ATTR, None
        )  # gradients now: an optimizer step may follow, unseen by versions
        return build()
    key = [(p._version, p.data_ptr()) for p in params]
    cache = owner.__dict__.setdefault(_CACHE_ATTR, {})
    hit = cache.get(name)
    if hit is not None and hit[0] == key:
        return hit[2]
    # ordinary tensors even under inference_mode, so that a later grad-enabled forward may save them for backward
    with torch.inference_mode(False), torch.no_grad():
        value = build()
        keep = [p.detach() for p in params]
    cache[name] = (key, keep, value)
    return value


def _scaled_b(router, loras: list, dtype: torch.dtype) -> torch.Tensor:
    """``cat(B_e, dim=1)`` ``(O, R)`` with each expert's LoRA scaling on its rank columns, in ``dtype``."""
    b = torch.cat([_b(lora) for lora in loras], 1) if len(loras) > 1 else _b(loras[0])
    scale = router.uniform_scaling
    if scale is None:
        scale = router.layout(b.device).column_scaling.to(b.dtype)
    return (b * scale).to(dtype)


def dense_weights(
    router, loras: list, dtype: torch.dtype, with_router: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, B)``: ``cat(A_e)`` ``(R, D)`` (with ``with_router``, ``[W_router; A_1; ...; A_E]`` ``(E + R, D)``) and
    the scaled ``cat(B_e, dim=1)`` ``(O, R)``, in ``dtype``."""
    params = _expert_params(loras)
    if with_router:
        params.append(router.weight)

    def build():
        a = torch.cat(params[: len(loras)]) if len(loras) > 1 else params[0]
        a = torch.cat([router.weight, a]) if with_router else a
        return a.to(dtype), _scaled_b(router, loras, dtype)

    return cached(router, f"dense{int(with_router)}:{dtype}", params, build)


def sparse_weights(router, loras: list, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The sparse path's ``A_e.T`` ``(E, D, r)`` and scaled ``B_e.T`` ``(E, r, O)`` (equal ranks), in ``dtype``."""

    def build():
        a_t = torch.stack([_a(lora).t() for lora in loras]).to(dtype)
        b_t = torch.stack([_b(lora).t() for lora in loras])  # (E, r, O)
        scale = router.uniform_scaling
        if scale is None:
            scale = router.layout(b_t.device).expert_scaling.to(b_t.dtype)[:, None, None]
        return a_t, (b_t * scale).to(dtype)

    return cached(router, f"sparse:{dtype}", _expert_params(loras), build)
