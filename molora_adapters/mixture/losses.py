"""Auxiliary router losses and routing statistics, as pure functions of router logits.

Shapes: ``N`` routing decisions (tokens, or sequences for sentence routing), ``E`` experts.
``token_mask`` is ``(N,)`` bool, True for decisions that count (padding excluded); ``None`` counts all.
Logits of experts that are absent from a layer are ``-inf``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _masked_mean(values: torch.Tensor, token_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the first dim of ``values`` ``(N, ...)``, counting only rows where ``token_mask``."""
    if token_mask is None:
        return values.mean(dim=0)
    w = token_mask.to(values.dtype).reshape(-1, *([1] * (values.dim() - 1)))
    return (values * w).sum(dim=0) / w.sum().clamp_min(1.0)


def load_balancing_loss(
    router_probs: torch.Tensor,
    selected: torch.Tensor,
    num_experts: int,
    token_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Switch Transformer balancing loss (Fedus et al. 2021, eq. 4; Mixtral's ``load_balancing_loss_func``).

    ``num_experts * sum_e f_e * P_e`` where ``f_e`` is the share of the top-k assignments that go to expert ``e``
    and ``P_e`` its mean router probability, both over unmasked decisions. Normalising ``f`` by ``k`` makes the loss
    exactly 1 under uniform routing for any ``top_k``, and padding never changes it.

    Args:
        router_probs (`torch.Tensor` of shape `(N, E)`): softmax router probabilities (float32).
        selected (`torch.Tensor` of shape `(N, E)`): 1 where the expert is among the decision's top-k, else 0.
        num_experts (`int`): experts that can be selected (absent experts excluded).
        token_mask (`torch.Tensor` of shape `(N,)`, *optional*): decisions to count.
    """
    selected = selected.to(router_probs.dtype)
    k = selected.sum(dim=-1).clamp_min(1.0)  # (N,)
    f = _masked_mean(selected / k[:, None], token_mask)  # (E,) sums to 1
    p = _masked_mean(router_probs, token_mask)  # (E,)
    return num_experts * (f * p).sum()


def router_z_loss(router_logits: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
    """ST-MoE router z-loss (Zoph et al. 2022, eq. 5): mean squared log-partition of the router logits ``(N, E)``."""
    z = torch.logsumexp(router_logits.float(), dim=-1) ** 2
    return _masked_mean(z, token_mask)


def language_supervision_loss(
    router_logits: torch.Tensor,
    target_expert: torch.Tensor,
    token_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of the router ``(N, E)`` toward each decision's language expert ``(N,)``.

    Decisions whose target expert is absent from the layer (logit ``-inf``) are skipped.
    """
    logits = router_logits.float()
    valid = torch.isfinite(logits.gather(1, target_expert[:, None]).squeeze(1))
    mask = valid if token_mask is None else valid & token_mask
    safe_target = torch.where(valid, target_expert, torch.zeros_like(target_expert))
    ce = F.cross_entropy(logits.masked_fill(~torch.isfinite(logits), -1e4), safe_target, reduction="none")
    return _masked_mean(ce, mask)


def top_k_selection(router_logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """``(N, E)`` 0/1 mask of the top-k experts per decision."""
    idx = router_logits.topk(top_k, dim=-1).indices
    return torch.zeros_like(router_logits, dtype=torch.float32).scatter_(-1, idx, 1.0)


@torch.no_grad()
def routing_statistics(
    router_logits: dict[str, torch.Tensor],
    attention_mask: torch.Tensor | None = None,
    top_k: int = 1,
) -> dict:
    """Summaries of a forward pass's routing, for logging.

    Args:
        router_logits (`dict[str, torch.Tensor]`): per-layer logits ``(N, E)`` as returned with
            ``output_router_logits=True``.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): excludes padding for token routing
            (ignored for layers whose ``N`` is not ``batch * seq``).
        top_k (`int`, *optional*, defaults to 1): experts counted as selected per decision.

    Returns:
        `dict` with ``entropy`` (mean routing entropy in nats, over layers), ``normalized_entropy`` (divided by
        ``log E``), ``balance`` (mean coefficient of variation of the expert load; 0 is perfectly balanced) and
        ``load`` (per layer, the share of selections each expert received).
    """
    if not router_logits:
        return {"entropy": 0.0, "normalized_entropy": 0.0, "balance": 0.0, "load": {}}
    entropies, cvs, loads = [], [], {}
    for key, logits in router_logits.items():
        logits = logits.float()
        mask = None
        if attention_mask is not None and attention_mask.numel() == logits.shape[0]:
            mask = attention_mask.reshape(-1).to(device=logits.device).bool()
        probs = logits.softmax(-1)
        ent = -(probs * probs.clamp_min(1e-12).log()).sum(-1)
        entropies.append(_masked_mean(ent, mask))
        k = min(top_k, int(torch.isfinite(logits[0]).sum()))
        load = _masked_mean(top_k_selection(logits, k), mask)
        load = load / load.sum().clamp_min(1e-12)
        loads[key] = load.tolist()
        present = torch.isfinite(logits[0])
        lp = load[present]
        cvs.append(lp.std(unbiased=False) / lp.mean().clamp_min(1e-12))
    n_exp = next(iter(router_logits.values())).shape[-1]
    entropy = float(torch.stack(entropies).mean())
    return {
        "entropy": entropy,
        "normalized_entropy": entropy / math.log(n_exp) if n_exp > 1 else 0.0,
        "balance": float(torch.stack(cvs).mean()),
        "load": loads,
    }


@torch.no_grad()
def routing_summary(
    router_logits: dict[str, torch.Tensor],
    attention_mask: torch.Tensor | None = None,
    top_k: int = 1,
) -> torch.Tensor:
    """``entropy`` and ``balance`` of :func:`routing_statistics` as one ``(2,)`` tensor on the logits' device,
    computed without a host sync (no ``.item()``, no boolean indexing), so that a training loop can accumulate
    it every step and read it once per logging step.

    Args:
        router_logits (`dict[str, torch.Tensor]`): per-layer logits ``(N, E)``; absent experts are ``-inf``.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): as for :func:`routing_statistics`.
        top_k (`int`, *optional*, defaults to 1): experts counted as selected per decision.
    """
    entropies, cvs = [], []
    for logits in router_logits.values():
        logits = logits.float()  # (N, E)
        mask = None
        if attention_mask is not None and attention_mask.numel() == logits.shape[0]:
            mask = attention_mask.reshape(-1).to(device=logits.device).bool()  # (N,)
        probs = logits.softmax(-1)
        entropies.append(_masked_mean(-(probs * probs.clamp_min(1e-12).log()).sum(-1), mask))
        present = torch.isfinite(logits[0]).to(torch.float32)  # (E,)
        # top-min(k, present): top-k of more experts than present picks -inf ones, which `present` removes
        selected = top_k_selection(logits, min(top_k, logits.shape[-1])) * present
        load = _masked_mean(selected, mask)  # (E,)
        load = load / load.sum().clamp_min(1e-12)
        n_present = present.sum()
        mean = load.sum() / n_present
        var = (((load - mean) ** 2) * present).sum() / n_present
        cvs.append(var.sqrt() / mean.clamp_min(1e-12))
    if not entropies:
        return torch.zeros(2)
    return torch.stack([torch.stack(entropies).mean(), torch.stack(cvs).mean()])
