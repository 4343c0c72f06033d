"""The mixture forward of one adapted linear layer: routing, then the selected experts' LoRA deltas.

1. route: one router per layer gives ``(B, T or 1, E)`` gates, exactly ``k`` non-zero per decision (token, or
   sequence for sentence / language routing); logits and the auxiliary loss go to the forward context;
2. experts: :mod:`.compute` runs them dense in rank space or sparse (grouped per expert), as the layer's router
   decided from the mixture's ``compute`` setting (:meth:`~.router.Router.sparse_path`), on the stacked weights of
   :mod:`.weights` (LoRA scalings folded into B, cached in inference). Under a top-level ``Mixture`` the delta is
   accumulated into the frozen linear's output by the B matmul itself (:func:`mixture_linear_output`); nested in
   another block it is returned as the composed state's delta.

Each layer routes on its own input: nothing passes between sibling layers. A reference composition (the naive loop
of :mod:`.reference`) can replace this forward within a block, for the current thread only
(:func:`use_composition`).

Unselected experts contribute exactly 0 and receive exactly zero gradient. Inside ``BatchSplit`` / ``Parallel`` the
attention mask and the language ids are sliced like the layer input (see :func:`context_rows`).
No Python loop over experts or tokens runs in this path.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch
from adapters.context import ForwardContext
from adapters.methods.lora import LoRAState

from .compute import gated_rank_activations, sparse_experts
from .config import DropoutSite, Granularity, MixtureConfig
from .losses import language_supervision_loss, load_balancing_loss, router_z_loss
from .router import Router, layer_key
from .weights import clear_weight_cache, dense_weights, expert_modules, sparse_weights

if TYPE_CHECKING:
    from adapters.methods.lora import LoRALinear

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


def context_rows(context, bsz: int, ref_rows: int) -> tuple[torch.Tensor | None, str]:
    """Rows of the forward's full batch (``ref_rows`` rows) that a layer input of ``bsz`` rows covers, and a key
    suffix naming them.

    Inside ``BatchSplit`` / ``Parallel`` a layer sees a slice (or a replicated copy) of the batch; the seam records
    the slice as ``context.mixture_rows`` (positions in the batch the block received, replicated for ``Parallel``).
    Returns ``(None, "")`` for the whole, unsliced batch.
    """
    rows = getattr(context, "mixture_rows", None)
    if rows is None:
        if bsz == ref_rows or ref_rows <= 0 or bsz % ref_rows:
            return None, ""
        rows = tuple(range(bsz))  # replicated by the model for Parallel, outside any recorded slice
    suffix = (
        f"@{rows[0]}-{rows[-1] + 1}" if rows == tuple(range(rows[0], rows[-1] + 1)) else f"@{hash(rows):x}"
    )
    cache = context.__dict__.setdefault("mixture_row_index", {})
    if (rows, ref_rows) not in cache:
        cache[rows, ref_rows] = torch.tensor(rows, dtype=torch.long) % ref_rows
    return cache[rows, ref_rows], suffix


def _token_mask(context, x: torch.Tensor) -> torch.Tensor | None:
    """``(B, T)`` bool attention mask matching ``x`` ``(B, T, D)`` (sliced like ``x``), or None when unknown."""
    mask = getattr(context, "mixture_attention_mask", None)
    if mask is None or x.dim() != 3 or mask.dim() != 2 or mask.shape[1] != x.shape[1]:
        return None
    rows, _ = context_rows(context, x.shape[0], mask.shape[0])
    if rows is not None:
        mask = mask.index_select(0, rows.to(mask.device))
    if mask.shape[0] != x.shape[0]:
        return None
    return mask.to(device=x.device).bool()


def _language_index(context, config: MixtureConfig, name: str, x: torch.Tensor) -> torch.Tensor | None:
    """``(B,)`` expert index per example of ``x`` from the ``language_ids`` forward argument (sliced like ``x``),
    converted once per forward."""
    language_ids = getattr(context, "language_ids", None)
    if language_ids is None:
        return None
    cache = context.mixture_language_index
    if name not in cache:
        if isinstance(language_ids, torch.Tensor):
            idx = language_ids.long().reshape(-1)
            if idx.numel() and (idx.min() < 0 or idx.max() >= config.n_experts):
                raise ValueError(
                    f"`language_ids` must index the {config.n_experts} experts {config.experts}, got {idx.tolist()}."
                )
        else:
            idx = torch.tensor([config.expert_index(str(lang)) for lang in language_ids], dtype=torch.long)
        cache[name] = idx.to(x.device)
    idx = cache[name]
    rows, _ = context_rows(context, x.shape[0], idx.shape[0])
    if rows is not None:
        idx = idx.index_select(0, rows.to(idx.device))
    if idx.shape[0] != x.shape[0]:
        raise ValueError(
            f"`language_ids` has {idx.shape[0]} entries but the batch has {x.shape[0]} examples; pass one language "
            "code or expert index per example."
        )
    return idx


def _route(
    router: Router,
    config: MixtureConfig,
    top_k: int,
    x: torch.Tensor,
    context,
    name: str,
    raw_logits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Gates ``(B, T or 1, E)`` (or ``(N, E)`` for 2-D input), router logits, routing probabilities (None for hard
    language routing), decision mask and language targets."""
    granularity = config.granularity
    recording = bool(getattr(context, "output_router_logits", False))
    # token routing reads the mask only to record its decisions; sentence routing pools over it
    mask = _token_mask(context, x) if recording or granularity is not Granularity.TOKEN else None
    # language ids matter only for hard routing and for the language-supervision loss
    needs_lang = granularity is Granularity.LANGUAGE or (config.language_loss_coef > 0 and recording)
    lang = _language_index(context, config, name, x) if needs_lang and x.dim() == 3 else None
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
    # (B, T or 1, E) float32; token routing may come with the router matmul already done (fused with the experts')
    logits = router(router_in) if raw_logits is None else router.finish(raw_logits)
    if config.temperature != 1.0:
        logits = logits / config.temperature

    if granularity is Granularity.LANGUAGE:
        if lang is None:
            raise ValueError(
                "This mixture routes by language (granularity='language'): pass `language_ids` to the forward, "
                "one language code or expert index per example."
            )
        probs = None
        gates = torch.zeros_like(logits).scatter_(-1, lang.view(-1, 1, 1), 1.0)  # (B, 1, E) hard routing
    else:
        probs, gates = _softmax_top_k(
            logits, config, top_k, len(router.present_experts), _needs_probs(context, config)
        )
    return gates, logits, probs, decision_mask, lang


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim of float32 ``logits``: by hand below 16 experts (~2x faster on CPU than the fused
    kernel, which vectorises only wide rows), the fused kernel from 16 on."""
    if logits.shape[-1] >= 16:
        return logits.softmax(-1)
    probs = (logits - logits.amax(dim=-1, keepdim=True)).exp()
    return probs / probs.sum(dim=-1, keepdim=True)


def top_k_gates(
    logits: torch.Tensor,
    top_k: int,
    n_present: int,
    renormalize: bool = True,
    probs: torch.Tensor | None = None,
) -> torch.Tensor:
    """Top-k gates ``(..., E)`` from float32 router ``logits``: the ``top_k`` experts with the largest logits get
    their renormalised routing probabilities (the softmax over the selected logits), the others exactly 0.

    Equal to ``sparse_top_k_gates(softmax(logits), ...)`` but without the full softmax, which inference does not
    need (``probs``, when the auxiliary losses already computed it, is reused). Top-2 runs as two ``max`` passes,
    2-3x faster on CPU than ``topk``. With ``top_k >= n_present`` this is the dense softmax mixture.
    """
    if top_k >= n_present or not renormalize:
        probs = _softmax(logits) if probs is None else probs
        return sparse_top_k_gates(probs, top_k, n_present, renormalize)
    if top_k == 1:
        return torch.zeros_like(logits).scatter_(-1, logits.argmax(dim=-1, keepdim=True), 1.0)
    if top_k == 2:
        v1, i1 = logits.max(dim=-1, keepdim=True)  # (..., 1)
        v2, i2 = logits.scatter(-1, i1, float("-inf")).max(dim=-1, keepdim=True)
        w1 = torch.sigmoid(v1 - v2)  # p1 / (p1 + p2)
        return torch.zeros_like(logits).scatter_(-1, i1, w1).scatter_(-1, i2, 1.0 - w1)
    vals, idx = logits.topk(top_k, dim=-1)  # (..., k), largest first
    w = (vals - vals[..., :1]).exp()
    return torch.zeros_like(logits).scatter_(-1, idx, w / w.sum(dim=-1, keepdim=True))


def _softmax_top_k(
    logits: torch.Tensor, config: MixtureConfig, top_k: int, n_present: int, need_probs: bool
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Routing probabilities (None unless ``need_probs``: only the load-balancing loss reads them) and top-k gates
    over the last dim of float32 ``logits`` ``(..., E)``."""
    probs = _softmax(logits) if need_probs else None
    return probs, top_k_gates(logits, min(top_k, n_present), n_present, config.renormalize, probs)


def _needs_probs(context, config: MixtureConfig) -> bool:
    """Whether this forward records routing with a load-balancing loss (the only reader of the probabilities)."""
    return config.load_balancing_coef > 0 and bool(getattr(context, "output_router_logits", False))


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


# a composition function replacing the fast forward in this thread / task (the reference loop); None: the fast one
_composition: contextvars.ContextVar[Callable | None] = contextvars.ContextVar(
    "molora_composition", default=None
)


@contextlib.contextmanager
def use_composition(fn: Callable) -> Iterator[None]:
    """Within the block, every mixture layer of the current thread (or asyncio task) composes through ``fn``
    (``fn(layer, adapter_setup, state) -> state``, the delta in ``hidden_states``) instead of the fast forward."""
    token = _composition.set(fn)
    try:
        yield
    finally:
        _composition.reset(token)


def compose_mixture_lora(
    layer: LoRALinear, adapter_setup: Mixture, state: LoRAState, lvl: int = 0
) -> LoRAState:
    """``LoRALinear`` composition function for a :class:`Mixture` block (see module docstring)."""
    return _mixture(layer, adapter_setup, state, fuse_output=False)


def mixture_linear_output(
    layer: LoRALinear, adapter_setup: Mixture, layer_input: torch.Tensor, layer_output: torch.Tensor
) -> torch.Tensor:
    """The output of ``layer`` under a top-level :class:`Mixture`: ``layer_output`` (the frozen linear's) plus the
    experts' delta, the residual add fused into the B matmul (``addmm``) instead of adapters' separate scale-and-add
    passes. The seam's ``LoRALinear.forward`` calls it; inside ``Stack`` / ``Parallel`` / ``BatchSplit`` the block
    composes through :func:`compose_mixture_lora` as usual."""
    state = LoRAState(layer_input, None, layer_output, None)
    return _mixture(layer, adapter_setup, state, fuse_output=True).layer_output


def _b_matmul(h: torch.Tensor, lora_b_t: torch.Tensor, add_to: torch.Tensor | None) -> torch.Tensor:
    """``h @ lora_b_t`` ``(..., R) @ (R, O)``; with ``add_to`` ``(..., O)`` (the frozen linear's fresh output, which
    nothing else holds) the product is accumulated into it by the matmul itself (``addmm_``), where the dtypes
    agree and autocast is off, else added."""
    if add_to is None:
        return h @ lora_b_t
    if _accumulate_in_place(add_to, h, lora_b_t):
        out = add_to.reshape(-1, add_to.shape[-1])
        return out.addmm_(h.reshape(-1, h.shape[-1]), lora_b_t).view(add_to.shape)
    return add_to + h @ lora_b_t


def _accumulate_in_place(add_to: torch.Tensor, *operands: torch.Tensor) -> bool:
    """Whether ``add_to`` can take an in-place accumulation of ``operands``' product (same dtype, no autocast)."""
    return all(t.dtype == add_to.dtype for t in operands) and not torch.is_autocast_enabled(
        add_to.device.type
    )


def _finish(state: LoRAState, out: torch.Tensor, add_to: torch.Tensor | None, last: str) -> LoRAState:
    """The composed state: ``out`` is the experts' delta (``add_to`` None) or the layer's final output."""
    if add_to is None:
        return state._replace(hidden_states=out, last=last)
    return state._replace(layer_output=out, last=last)


def _mixture(layer: LoRALinear, adapter_setup: Mixture, state: LoRAState, fuse_output: bool) -> LoRAState:
    """The mixture forward of one adapted linear (see module docstring); with ``fuse_output`` the delta is added to
    ``state.layer_output`` (the frozen linear's fresh output) and the returned state's ``layer_output`` is the final
    output, else its ``hidden_states`` is the delta."""
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
    top_k = adapter_setup.top_k or config.top_k
    x = state.layer_input
    expert_in = state.hidden_states if state.hidden_states is not None else x

    composition = _composition.get()
    if composition is not None:  # a reference loop replaces the fast forward
        if torch.is_grad_enabled():
            clear_weight_cache(router)  # its gradients may be stepped: the cached stacks would go stale
        composed = composition(layer, adapter_setup, state)
        if not fuse_output:
            return composed
        return composed._replace(layer_output=state.layer_output + composed.hidden_states)

    n_present, dtype = len(router.present_experts), expert_in.dtype
    last = router.present_experts[0]
    add_to = state.layer_output if fuse_output else None
    loras = expert_modules(layer, router)
    # non-zero gates per decision
    k = 1 if config.granularity is Granularity.LANGUAGE else min(top_k, n_present)
    sparse = router.sparse_path(k, dtype)
    dropout = loras[0].lora_dropout
    drops = isinstance(dropout, torch.nn.Dropout) and dropout.training and dropout.p > 0
    in_rank = config.dropout_site is DropoutSite.RANK
    raw_logits = h = lora_a = lora_b = None
    if not sparse:
        if (
            config.granularity is Granularity.TOKEN
            and state.hidden_states is None
            and router.weight.dtype == dtype
            and not (router.training and router.jitter_noise > 0)
            and not (drops and not in_rank)
        ):
            # router and experts read the same x: one matmul against [router; A_cat] ``(E + R, D_in)``
            weight, lora_b = dense_weights(router, loras, dtype, with_router=True)
            hx = x @ weight.t()  # (..., E + R)
            raw_logits, h = hx[..., : router.n_experts], hx[..., router.n_experts :]
        else:
            # (R, D_in) all experts' A stacked, (D_out, R) their B side by side, scalings folded in
            lora_a, lora_b = dense_weights(router, loras, dtype)

    gates, logits, probs, decision_mask, lang = _route(
        router, config, top_k, x, context, adapter_setup.name, raw_logits
    )
    if getattr(context, "output_router_logits", False):
        # slices of BatchSplit / Parallel get their own entry (a suffix naming their rows)
        _, suffix = context_rows(context, x.shape[0], _batch_rows(context, x))
        _record_routing(context, key + suffix, config, n_present, gates, logits, probs, decision_mask, lang)

    layout = router.layout(x.device)
    if not router.all_present:
        gates = gates.index_select(-1, layout.expert_index)  # (..., E_present)
    gates = gates.to(dtype)  # the LoRA scalings are folded into the stacked B

    if drops and not in_rank:  # (the router + A fusion is off then: the router reads the undropped x)
        expert_in = dropout(expert_in)
    if config.granularity is Granularity.TOKEN:
        units = expert_in.reshape(-1, 1, expert_in.shape[-1])  # (U = tokens, 1, D)
        h = h.reshape(-1, 1, h.shape[-1]) if h is not None else None  # (U, 1, R)
    else:
        units = expert_in  # (U = sequences, T, D), gates (B, 1, E)
    flat_gates = gates.reshape(-1, gates.shape[-1])  # (U, E_present)
    if sparse:
        a_t, b_t = sparse_weights(router, loras, dtype)  # (E, D_in, r), (E, r, D_out)
        into = add_to if add_to is not None and _accumulate_in_place(add_to, units, b_t) else None
        out = sparse_experts(units, flat_gates, k, a_t, b_t, into, dropout if drops and in_rank else None)
        out = out.reshape(*expert_in.shape[:-1], out.shape[-1])  # (..., D_out)
        if add_to is not None and into is None:
            out = add_to + out
        return _finish(state, out, add_to, last)
    h = gated_rank_activations(units, flat_gates, lora_a, router.rank, layout.rank_owner, h)  # (U, S, R)
    if drops and in_rank:
        h = dropout(h)
    h = h.reshape(*expert_in.shape[:-1], h.shape[-1])  # (..., R)
    return _finish(state, _b_matmul(h, lora_b.t(), add_to), add_to, last)


def _batch_rows(context, x: torch.Tensor) -> int:
    """Rows of the forward's full batch (from the attention mask or the input ids), for :func:`context_rows`."""
    mask = getattr(context, "mixture_attention_mask", None)
    return mask.shape[0] if isinstance(mask, torch.Tensor) and mask.dim() == 2 else x.shape[0]


def compose_mixture_unsupported(layer, adapter_setup: Mixture, state, lvl: int = 0):
    """Composition function for non-LoRA adapter layers: a mixture has no experts there, so it is a no-op."""
    if set(layer.adapter_modules.keys()).isdisjoint(adapter_setup.flatten()):
        return state
    raise NotImplementedError(
        f"`Mixture` experts must be LoRA adapters; {type(layer).__name__} holds some of {adapter_setup.children}."
    )
