"""GDKS: gradient-disentangled knowledge sharing at one encoder layer (X-STA, arXiv 2311.06758, Sec. 3.2).

A pair batch holds ``B`` source rows followed by ``B`` target rows, ``(2B, L)``. At the chosen layer:

* the source rows run the layer's ordinary self-attention and never see the target;
* each target row mixes its self-attention context with a cross-attention context over its source row,
  ``r * A_cross + (1 - r) * A_self`` with ``r = gate_scale * w + b``, using the layer's own Q/K/V projections;
* the cross-attention's keys and values come from the corrected source state
  ``sg(X_s) + F([sg(X_s); sg(X_t)])`` (``F`` = dropout + ``Linear(2H, H)``, ``sg`` = stop-gradient), so no
  target-side gradient reaches the source stream. Same-language pairs (en-en) skip ``F`` and the stop-gradient:
  the source is used as is, as in the released code.

The rest of the layer (output projection, residual, layer norm, feed-forward, adapters) is untouched. Adapters on
the Q/K/V projections (LoRA, a Mixture) apply to every projection, including the corrected-source keys and values;
those are projected as a ``(2B, L, H)`` batch (the target half a placeholder) so that per-row routing by
``language_ids`` keeps its shape, which also means a mixture records this layer's key/value router outputs twice. The dispatch
into this module is installed by :mod:`molora_adapters.xsta.seam` when a model gets its first X-STA setup, and
switched on per forward call with ``xsta_paired=True``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import XSTAConfig

GDKS_ATTR = "xsta_gdks"
"""Attribute of the base model holding a ``ModuleDict`` name -> :class:`KnowledgeSharing`; parameter paths
contain ``xsta_gdks.<name>.``."""


class KnowledgeSharing(nn.Module):
    """The learnable parts of GDKS at one layer: the source correction ``F`` and the gate scalars.

    Args:
        hidden_size (`int`): the encoder's hidden size ``H``.
        config (`XSTAConfig`): the setup's configuration (``layer``, ``gate_scale``, ``correction_dropout``).
        init_std (`float`, *optional*, defaults to 0.02): standard deviation of the correction's initial weights
            (the encoder's ``initializer_range``, as the released code's ``init_weights()``; zero bias).
    """

    def __init__(
        self, hidden_size: int, config: XSTAConfig, device=None, dtype=None, init_std: float = 0.02
    ) -> None:
        super().__init__()
        self.layer = config.layer
        self.gate_scale = config.gate_scale
        self.hidden_size = hidden_size
        self.dropout = nn.Dropout(config.correction_dropout)
        self.correction = nn.Linear(2 * hidden_size, hidden_size, device=device, dtype=dtype)
        nn.init.normal_(self.correction.weight, mean=0.0, std=init_std)
        nn.init.zeros_(self.correction.bias)
        self.gate_weight = nn.Parameter(torch.ones((), device=device, dtype=dtype))
        self.gate_bias = nn.Parameter(torch.zeros((), device=device, dtype=dtype))

    def extra_repr(self) -> str:
        return f"layer={self.layer}, hidden_size={self.hidden_size}, gate_scale={self.gate_scale}"

    def gate(self) -> torch.Tensor:
        """The cross-attention weight ``r = gate_scale * w + b`` (a scalar tensor)."""
        return self.gate_scale * self.gate_weight + self.gate_bias

    def corrected_source(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``sg(X_s) + F([sg(X_s); sg(X_t)])`` for states of shape ``(B, L, H)``."""
        source = source.detach()
        return source + self.correction(self.dropout(torch.cat([source, target.detach()], dim=-1)))


class PairState(NamedTuple):
    """What one paired forward call needs at the GDKS layer (built once per call, before any work)."""

    gdks: KnowledgeSharing | None  # None: paired call without knowledge sharing (ablation)
    attention_mask: torch.Tensor  # (2B, L) bool, True on real tokens
    source_language: str
    target_language: str

    @property
    def same_language(self) -> bool:
        return self.source_language == self.target_language


def _language_list(language_ids: Any, n: int) -> list[str]:
    if isinstance(language_ids, str) or not isinstance(language_ids, (list, tuple)):
        raise ValueError(
            f"`language_ids` of a paired X-STA batch must be a list of {n} language codes, got {language_ids!r}."
        )
    if len(language_ids) != n:
        raise ValueError(
            f"`language_ids` has {len(language_ids)} entries but the pair batch has {n} rows; give one code per row."
        )
    return [str(x) for x in language_ids]


def pair_languages(language_ids: Any, n_rows: int) -> tuple[str, str]:
    """Validate a pair batch's rows and languages; returns ``(source_language, target_language)``.

    Raises ``ValueError`` for an odd row count or a batch mixing language pairs (one pair of languages per batch).
    """
    if n_rows % 2:
        raise ValueError(
            f"A paired X-STA batch has 2B rows ([source; target]), got an odd number of rows ({n_rows}). "
            "Build batches with `molora_adapters.xsta.DataCollatorForXSTA` or `make_pair_batch`."
        )
    codes = _language_list(language_ids, n_rows)
    half = n_rows // 2
    sources, targets = set(codes[:half]), set(codes[half:])
    if len(sources) != 1 or len(targets) != 1:
        raise ValueError(
            f"A paired X-STA batch must hold one language pair (one source and one target language), got source "
            f"languages {sorted(sources)} and target languages {sorted(targets)}. Group batches by pair "
            "(`PairBatchSampler` does)."
        )
    return sources.pop(), targets.pop()


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    n, length, hidden = x.shape
    return x.view(n, length, n_heads, hidden // n_heads).transpose(1, 2)  # (n, L, H) -> (n, h, L, d)


def _attention(
    query: torch.Tensor, key: torch.Tensor, key_mask: torch.Tensor, dropout_p: float, training: bool
) -> torch.Tensor:
    """Attention probabilities ``(n, h, Lq, Lk)``, softmax in float32; ``key_mask`` ``(n, Lk)`` bool."""
    scores = torch.matmul(query, key.transpose(-1, -2)).float() / math.sqrt(query.shape[-1])
    scores = scores.masked_fill(~key_mask[:, None, None, :], torch.finfo(torch.float32).min)
    probs = scores.softmax(dim=-1).to(query.dtype)
    return F.dropout(probs, p=dropout_p, training=training)


def gdks_attention(attn: nn.Module, hidden_states: torch.Tensor, state: PairState, context: Any):
    """The GDKS self-attention of a BERT-family ``*SelfAttention`` module on a pair batch.

    Returns ``(context_layer, None)`` like the module's own forward; stores the head-averaged cross-attention
    ``(B, L_target, L_source)`` (float32 probabilities before dropout) as ``context.xsta_cross_attention``.
    """
    n2, length, _ = hidden_states.shape
    b = n2 // 2
    h = attn.num_attention_heads
    mask = state.attention_mask
    drop = float(attn.dropout.p)
    query = _heads(attn.query(hidden_states), h)  # (2B, h, L, d)
    key = _heads(attn.key(hidden_states), h)
    value = _heads(attn.value(hidden_states), h)
    self_ctx = torch.matmul(_attention(query, key, mask, drop, attn.training), value)  # (2B, h, L, d)
    source, target = hidden_states[:b], hidden_states[b:]
    corrected = source if state.same_language else state.gdks.corrected_source(source, target)
    # adapters route per example over all 2B rows (language-routed mixtures); the target rows are a placeholder
    kv_input = torch.cat([corrected, target], dim=0)  # (2B, L, H)
    cross_key = _heads(attn.key(kv_input), h)[:b]  # (B, h, L, d)
    cross_value = _heads(attn.value(kv_input), h)[:b]
    scores = torch.matmul(query[b:], cross_key.transpose(-1, -2)).float() / math.sqrt(query.shape[-1])
    scores = scores.masked_fill(~mask[:b, None, None, :], torch.finfo(torch.float32).min)
    cross_probs = scores.softmax(dim=-1)  # (B, h, L_t, L_s)
    context.xsta_cross_attention = cross_probs.mean(dim=1)  # (B, L_t, L_s)
    dropped = F.dropout(cross_probs.to(query.dtype), p=drop, training=attn.training)
    cross_ctx = torch.matmul(dropped, cross_value)  # (B, h, L, d)
    r = state.gdks.gate().to(query.dtype)
    mixed = torch.cat([self_ctx[:b], r * cross_ctx + (1 - r) * self_ctx[b:]], dim=0)  # (2B, h, L, d)
    return mixed.transpose(1, 2).reshape(n2, length, -1), None  # (2B, h, L, d) -> (2B, L, H)
