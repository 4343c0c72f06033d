"""X-STA losses as pure functions: span cross-entropy and the two MGSA alignment losses (arXiv 2311.06758, Sec. 3.4).

* :func:`span_cross_entropy`: mean of the start and end cross-entropies (SQuAD convention: out-of-range positions are
  clamped to ``L`` and ignored).
* :func:`info_nce`: sentence-level alignment, InfoNCE with in-batch negatives over cosine similarities / temperature.
* :func:`pair_attention_entropy`: token-level alignment, the entropy of the head-averaged GDKS cross-attention and of
  its transpose, averaged over all positions of the padded batch (the released code's ``get_pair_entropy``) or over
  real tokens only.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

_LOG_EPS = 1e-8  # the released code's epsilon inside the log


def span_cross_entropy(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    start_positions: torch.Tensor,
    end_positions: torch.Tensor,
) -> torch.Tensor:
    """``(CE(start) + CE(end)) / 2`` for logits ``(n, L)`` and positions ``(n,)``; positions outside ``[0, L)``
    are ignored (an all-ignored batch gives 0)."""
    length = start_logits.shape[-1]
    start = start_positions.to(start_logits.device).long().clamp(0, length)
    end = end_positions.to(end_logits.device).long().clamp(0, length)
    if not bool(((start < length) | (end < length)).any()):
        return start_logits.sum() * 0.0
    ce_start = F.cross_entropy(start_logits.float(), start, ignore_index=length)
    ce_end = F.cross_entropy(end_logits.float(), end, ignore_index=length)
    return (ce_start + ce_end) / 2


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens: states ``(n, L, H)``, mask ``(n, L)`` -> ``(n, H)``."""
    weights = mask.to(states.dtype).unsqueeze(-1)  # (n, L, 1)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def info_nce(source: torch.Tensor, target: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """InfoNCE between paired vectors ``(B, D)``: row ``i`` of ``target`` is the positive of source ``i``, the other
    rows are negatives: ``CE(cos(s_i, t_j) / temperature, i)`` averaged over ``i`` (float32)."""
    sim = F.cosine_similarity(source.float().unsqueeze(1), target.float().unsqueeze(0), dim=-1)  # (B, B)
    labels = torch.arange(sim.shape[0], device=sim.device)
    return F.cross_entropy(sim / temperature, labels)


def _row_entropy(probs: torch.Tensor, row_mask: torch.Tensor) -> torch.Tensor:
    """Mean over real rows of ``-sum_j p_ij log(p_ij + eps)``: probs ``(B, R, C)``, row_mask ``(B, R)`` -> ``(B,)``."""
    entropy = -(probs * torch.log(probs + _LOG_EPS)).sum(-1)  # (B, R)
    weights = row_mask.to(entropy.dtype)
    return (entropy * weights).sum(-1) / weights.sum(-1).clamp(min=1.0)


def pair_attention_entropy(
    cross_attention: torch.Tensor,
    target_mask: torch.Tensor,
    source_mask: torch.Tensor,
    average: Literal["padded", "real"] = "padded",
) -> torch.Tensor:
    """Token-level MGSA loss: entropy of the GDKS cross-attention plus entropy of its transpose, batch mean.

    With ``average="padded"`` (the released code's ``get_pair_entropy``) each direction is ``-sum p log(p + eps)``
    over the last axis, averaged over every position of the padded batch: padded target rows (whose attention over
    the real source keys is a real distribution) count, padded source columns add zero entropy but count in the
    divisor. With ``average="real"`` padded rows carry no mass and the average runs over real tokens only, so the
    value does not depend on the padding.

    Args:
        cross_attention (`torch.Tensor` of shape `(B, L_t, L_s)`): head-averaged attention probabilities of the
            target queries over the source keys (padded keys carry exactly zero probability).
        target_mask / source_mask (`torch.Tensor` of shape `(B, L_t)` / `(B, L_s)`): 1 on real tokens.
        average (`str`, *optional*, defaults to `"padded"`): ``"padded"`` or ``"real"`` (see above).
    """
    probs = cross_attention.float()
    if average == "padded":
        everywhere_t = torch.ones_like(target_mask, dtype=torch.bool)
        everywhere_s = torch.ones_like(source_mask, dtype=torch.bool)
        forward = _row_entropy(probs, everywhere_t)
        backward = _row_entropy(probs.transpose(1, 2), everywhere_s)
        return (forward + backward).mean()
    if average != "real":
        raise ValueError(f"`average` must be 'padded' or 'real', got {average!r}.")
    t_mask, s_mask = target_mask.bool(), source_mask.bool()
    probs = probs * t_mask[:, :, None] * s_mask[:, None, :]  # padded query rows carry no mass either way
    forward = _row_entropy(probs, t_mask)  # over source positions, per target token
    backward = _row_entropy(probs.transpose(1, 2), s_mask)  # over target positions, per source token
    return (forward + backward).mean()
