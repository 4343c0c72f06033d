"""The X-STA extractive-QA prediction head (custom head type ``"xsta_qa"``): ATGC and the MGSA losses.

On a pair batch ``(2B, L)`` = ``[source; target]`` (``xsta_paired=True``):

* **ATGC** (attentive teacher-guided calibration, arXiv 2311.06758, Sec. 3.3): the final states of each stream are
  normalised with their language's statistics (batch statistics over real tokens in training, running statistics
  at eval, no affine parameters); one shared classifier gives source and target start/end logits; a teacher
  attention (own Q/K projections, ``h`` heads, query = target states, key = source states) averages the *detached*
  source logits over source positions into the teacher's target logits.
* **MGSA** (Sec. 3.4): InfoNCE between tanh-projected, mask-pooled source and target states, and the entropy of the
  GDKS cross-attention (see :mod:`.losses`).
* Loss: ``source_weight CE_s + target_weight CE_t + teacher_weight CE_teacher + entropy_weight H + infonce_weight
  NCE``. Paired predictions are target logits + teacher logits.

On a single stream (``xsta_paired`` unset) the head is a plain span classifier over all rows (with per-language
normalisation when ATGC is on): translate-train fine-tuning, and source-free inference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from adapters.context import ForwardContext
from adapters.heads import PredictionHead
from torch import nn
from transformers.utils import ModelOutput

from ..utils.heads import register_custom_head_class
from ..version import __version__
from .config import XSTAConfig
from .losses import info_nce, masked_mean, pair_attention_entropy, span_cross_entropy

XSTA_HEAD_TYPE = "xsta_qa"
"""The ``head_type`` under which the head is registered with ``register_custom_head``."""


@dataclass
class XSTAHeadOutput(ModelOutput):
    """Output of :class:`XSTAQAHead`.

    Args:
        loss (`torch.FloatTensor`, *optional*): the weighted total, when positions are given.
        source_loss / target_loss / teacher_loss / entropy_loss / infonce_loss (`torch.FloatTensor`, *optional*):
            the loss parts (paired calls; ``target_loss`` is the span loss of a single-stream call).
        start_logits / end_logits (`torch.FloatTensor` of shape `(n, L)`): answer scores; on a pair batch, of the
            ``n = B`` target rows (target + teacher logits when ATGC is on), else of every row.
        source_start_logits / source_end_logits (`torch.FloatTensor` of shape `(B, L)`, *optional*): paired calls.
        teacher_start_logits / teacher_end_logits (`torch.FloatTensor` of shape `(B, L)`, *optional*): paired calls
            with ATGC.
    """

    loss: torch.FloatTensor | None = None
    source_loss: torch.FloatTensor | None = None
    target_loss: torch.FloatTensor | None = None
    teacher_loss: torch.FloatTensor | None = None
    entropy_loss: torch.FloatTensor | None = None
    infonce_loss: torch.FloatTensor | None = None
    start_logits: torch.FloatTensor | None = None
    end_logits: torch.FloatTensor | None = None
    source_start_logits: torch.FloatTensor | None = None
    source_end_logits: torch.FloatTensor | None = None
    teacher_start_logits: torch.FloatTensor | None = None
    teacher_end_logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def init_linear_layers(module: nn.Module, std: float) -> None:
    """The encoder's initialisation for every ``nn.Linear`` of ``module``: weights ``N(0, std)``, zero biases.

    Like the released code's ``init_weights()``. PyTorch's default (Kaiming-uniform) init of the teacher's Q/K makes
    its attention, and so the teacher logits added to the target's at paired inference, far from uniform at step 0;
    with ``std = 0.02`` the teacher starts as a near-constant shift and only contributes what it has learnt.
    """
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.normal_(sub.weight, mean=0.0, std=std)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)


LOSS_PARTS = ("source_loss", "target_loss", "teacher_loss", "entropy_loss", "infonce_loss")


class LanguageNorm(nn.Module):
    """Per-language normalisation without affine parameters, statistics over real tokens only.

    Running statistics are bias-corrected: the update rate of a language is ``max(momentum, 1 / n)`` after its
    ``n``-th training batch (a cumulative average first, then the exponential one), so a language seen in only a few
    batches is normalised with its own statistics, not with a blend dominated by the initial zero mean and unit
    variance. At eval, a language never seen in training uses the statistics of ``fallback`` (the source language).

    Args:
        hidden_size (`int`): feature size.
        languages (`list[str]`): languages with their own running statistics.
        momentum (`float`): running-statistics update rate.
        eps (`float`): variance epsilon.
        fallback (`str`, *optional*): language whose statistics stand in for a language without any.
    """

    def __init__(
        self, hidden_size: int, languages: list[str], momentum: float, eps: float, fallback: str | None = None
    ) -> None:
        super().__init__()
        self.languages = list(languages)
        self.index = {code: i for i, code in enumerate(self.languages)}
        if fallback is not None and fallback not in self.index:
            raise ValueError(f"`fallback` {fallback!r} must be one of `languages` {self.languages}.")
        self.momentum, self.eps, self.fallback = momentum, eps, fallback
        self.register_buffer("running_mean", torch.zeros(len(self.languages), hidden_size))
        self.register_buffer("running_var", torch.ones(len(self.languages), hidden_size))
        self.register_buffer("num_batches_tracked", torch.zeros(len(self.languages), dtype=torch.long))

    def extra_repr(self) -> str:
        return f"languages={self.languages}, momentum={self.momentum}, eps={self.eps}, fallback={self.fallback!r}"

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # heads saved before bias-corrected statistics have no counts: treat every language as long tracked
        key = prefix + "num_batches_tracked"
        if key not in state_dict and prefix + "running_mean" in state_dict:
            state_dict[key] = torch.full_like(self.num_batches_tracked, 1_000_000)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def language_index(self, code: str) -> int:
        if code not in self.index:
            raise ValueError(
                f"Language {code!r} has no normalisation statistics; this X-STA head knows {self.languages} "
                "(set `XSTAConfig.languages`)."
            )
        return self.index[code]

    def forward(self, states: torch.Tensor, mask: torch.Tensor, language: str) -> torch.Tensor:
        """Normalise ``states`` ``(n, L, H)`` of one language; ``mask`` ``(n, L)`` marks real tokens."""
        i = self.language_index(language)
        x = states.float()
        if self.training:
            w = mask.to(x.dtype).unsqueeze(-1)  # (n, L, 1)
            count = w.sum().clamp(min=1.0)
            mean = (x * w).sum((0, 1)) / count  # (H,)
            var = (((x - mean) * w) ** 2).sum((0, 1)) / count
            with torch.no_grad():
                self.num_batches_tracked[i] += 1
                rate = max(self.momentum, 1.0 / float(self.num_batches_tracked[i]))
                self.running_mean[i].lerp_(mean.detach().to(self.running_mean.dtype), rate)
                self.running_var[i].lerp_(var.detach().to(self.running_var.dtype), rate)
        else:
            if self.fallback is not None and int(self.num_batches_tracked[i]) == 0:
                i = self.index[self.fallback]
            mean, var = self.running_mean[i].float(), self.running_var[i].float()
        return ((x - mean) / torch.sqrt(var + self.eps)).to(states.dtype)


class TeacherAttention(nn.Module):
    """Multi-head attention from target states to source states that averages the source's (detached) logits.

    Args:
        hidden_size (`int`): feature size.
        n_heads (`int`): attention heads (must divide ``hidden_size``).
    """

    def __init__(self, hidden_size: int, n_heads: int) -> None:
        super().__init__()
        if hidden_size % n_heads:
            raise ValueError(f"`teacher_heads`={n_heads} must divide the hidden size {hidden_size}.")
        self.n_heads = n_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)

    def extra_repr(self) -> str:
        return f"n_heads={self.n_heads}"

    def forward(
        self,
        target: torch.Tensor,
        source: torch.Tensor,
        source_mask: torch.Tensor,
        source_logits: torch.Tensor,
    ) -> torch.Tensor:
        """Teacher logits ``(B, L_t, 2)`` from states ``(B, L, H)``, mask ``(B, L_s)`` and logits ``(B, L_s, 2)``."""
        b, length, hidden = target.shape
        h, d = self.n_heads, hidden // self.n_heads
        q = self.query(target).view(b, length, h, d).transpose(1, 2)  # (B, h, L_t, d)
        k = self.key(source).view(b, source.shape[1], h, d).transpose(1, 2)  # (B, h, L_s, d)
        scores = torch.matmul(q, k.transpose(-1, -2)).float() / math.sqrt(d)
        scores = scores.masked_fill(~source_mask.bool()[:, None, None, :], torch.finfo(torch.float32).min)
        probs = scores.softmax(-1)  # (B, h, L_t, L_s)
        values = source_logits.detach().float()[
            :, None
        ]  # (B, 1, L_s, 2): the teacher never trains the source
        return torch.matmul(probs, values).mean(1).to(target.dtype)  # (B, h, L_t, 2) -> (B, L_t, 2)


class XSTAQAHead(PredictionHead):
    """X-STA span-extraction head (see module docstring).

    Args:
        model: the flex-head `adapters` model the head is added to.
        head_name (`str`): name of the head (and of its X-STA setup).
        **config: fields of :class:`~molora_adapters.xsta.XSTAConfig`.
    """

    def __init__(self, model, head_name: str, **config) -> None:
        super().__init__(head_name)
        cfg = XSTAConfig.from_dict(config)
        self.xsta_config = cfg
        self.config = {"head_type": XSTA_HEAD_TYPE, **cfg.to_dict(), "molora_version": __version__}
        hidden = model.config.hidden_size
        self.qa_outputs = nn.Linear(hidden, 2)
        if cfg.use_atgc:
            self.norm = LanguageNorm(
                hidden, cfg.languages, cfg.norm_momentum, cfg.norm_eps, fallback=cfg.source_language
            )
            self.teacher = TeacherAttention(hidden, cfg.teacher_heads or model.config.num_attention_heads)
        if cfg.use_mgsa:
            self.projection = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh())
        init_linear_layers(self, getattr(model.config, "initializer_range", 0.02))
        self.train(model.training)

    def _normalise(
        self, states: torch.Tensor, mask: torch.Tensor, languages: list[str] | None
    ) -> torch.Tensor:
        if not self.xsta_config.use_atgc:
            return states
        if languages is None:
            raise ValueError(
                "This X-STA head normalises per language: pass `language_ids` (one code per row) with the inputs."
            )
        if len(set(languages)) == 1:
            return self.norm(states, mask, languages[0])
        out = torch.empty_like(states)
        for code in sorted(set(languages)):  # one group per language, not per token
            rows = torch.tensor([lang == code for lang in languages], device=states.device)
            out[rows] = self.norm(states[rows], mask[rows], code)
        return out

    def _logits(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.qa_outputs(states).unbind(-1)  # (n, L, 2) -> 2 x (n, L)
        return start, end

    def forward(
        self,
        outputs,
        cls_output=None,
        attention_mask=None,
        return_dict=False,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        **kwargs,
    ):
        states = outputs[0]  # (n, L, H)
        mask = (
            attention_mask.bool()
            if attention_mask is not None
            else torch.ones(states.shape[:2], dtype=torch.bool, device=states.device)
        )
        context = ForwardContext.get_context()
        pair = getattr(context, "xsta_state", None)
        if pair is None:
            languages = getattr(context, "language_ids", None)
            if languages is not None:
                languages = [str(x) for x in languages]
            start, end = self._logits(self._normalise(states, mask, languages))
            parts = {"start_logits": start, "end_logits": end}
            if start_positions is not None and end_positions is not None:
                loss = span_cross_entropy(start, end, start_positions, end_positions)
                parts.update(loss=loss, target_loss=loss)
        else:
            parts = self._paired(states, mask, pair, context, start_positions, end_positions)
        if return_dict:
            return XSTAHeadOutput(
                **parts,
                hidden_states=getattr(outputs, "hidden_states", None),
                attentions=getattr(outputs, "attentions", None),
            )
        logits = (parts["start_logits"], parts["end_logits"])
        return (parts["loss"], *logits) if "loss" in parts else logits

    def _paired(self, states, mask, pair, context, start_positions, end_positions) -> dict[str, torch.Tensor]:
        cfg = self.xsta_config
        b = states.shape[0] // 2
        s_mask, t_mask = mask[:b], mask[b:]
        source = self._normalise(states[:b], s_mask, [pair.source_language])
        target = self._normalise(states[b:], t_mask, [pair.target_language])
        start, end = self._logits(torch.cat([source, target]))  # 2 x (2B, L)
        parts = {"source_start_logits": start[:b], "source_end_logits": end[:b]}
        teacher = None
        if cfg.use_atgc:
            source_logits = torch.stack([start[:b], end[:b]], dim=-1)  # (B, L, 2)
            teacher = self.teacher(target, source, s_mask, source_logits).unbind(-1)  # 2 x (B, L)
            parts.update(teacher_start_logits=teacher[0], teacher_end_logits=teacher[1])
            parts.update(start_logits=start[b:] + teacher[0], end_logits=end[b:] + teacher[1])
        else:
            parts.update(start_logits=start[b:], end_logits=end[b:])
        if start_positions is None or end_positions is None:
            return parts
        s_pos, e_pos = start_positions, end_positions
        parts["source_loss"] = span_cross_entropy(start[:b], end[:b], s_pos[:b], e_pos[:b])
        parts["target_loss"] = span_cross_entropy(start[b:], end[b:], s_pos[b:], e_pos[b:])
        loss = cfg.source_weight * parts["source_loss"] + cfg.target_weight * parts["target_loss"]
        if teacher is not None:
            parts["teacher_loss"] = span_cross_entropy(teacher[0], teacher[1], s_pos[b:], e_pos[b:])
            loss = loss + cfg.teacher_weight * parts["teacher_loss"]
        if cfg.use_mgsa:
            cross = getattr(context, "xsta_cross_attention", None)
            if cross is not None:
                parts["entropy_loss"] = pair_attention_entropy(cross, t_mask, s_mask, cfg.entropy_average)
                loss = loss + cfg.entropy_weight * parts["entropy_loss"]
            pooled = self.projection(masked_mean(torch.cat([source, target]), mask))  # (2B, H)
            parts["infonce_loss"] = info_nce(pooled[:b], pooled[b:], cfg.temperature)
            loss = loss + cfg.infonce_weight * parts["infonce_loss"]
        parts["loss"] = loss
        return parts


def register_xsta_head(model) -> None:
    """Register :class:`XSTAQAHead` as custom head type ``"xsta_qa"`` on ``model`` (idempotent).

    Args:
        model: a flex-head `adapters` model (e.g. from ``AutoAdapterModel``).
    """
    register_custom_head_class(model, XSTA_HEAD_TYPE, XSTAQAHead)
