"""Multi2OIE predicate and argument taggers as one `adapters` prediction head (custom head type ``"oie"``).

The head follows Ro et al. (2020), "Multi^2OIE: Multilingual Open Information Extraction Based on
Multi-Head Attention with BERT" (Findings of EMNLP):

* **predicate tagger**: dropout + linear layer over the encoder's token states (``O`` / ``P-B`` / ``P-I``);
* **argument tagger** for one predicate: the input of every token is
  ``[token state ; mean of the predicate's token states ; embedding of predicate / other / padding]``,
  followed by ``n_arg_layers`` blocks of multi-head attention whose keys and values are the (fixed) input
  features of the predicate's tokens only, each block followed by a feed-forward layer (both with
  residual connection and layer norm), then dropout + a linear tag classifier.

Loss = ``predicate_loss_weight * CE(predicate) + argument_loss_weight * CE(argument)``; positions labelled
``IGNORE_INDEX`` are not scored.

Usage::

    from molora_adapters.oie.heads import add_oie_head
    add_oie_head(model, "oie")            # registers the "oie" custom head type on the model and adds it
    model.save_head(path, "oie"); model.load_head(path)   # plain adapters APIs (after register_oie_head)
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Literal

import torch
import torch.nn.functional as F
from adapters.heads import PredictionHead
from torch import nn
from transformers.utils import ModelOutput

from ..utils.attention import scaled_dot_product_attention
from ..utils.heads import register_custom_head_class
from ..version import __version__
from .labels import ARG_LABELS, IGNORE_INDEX, PRED_LABELS

logger = logging.getLogger(__name__)

OIE_HEAD_TYPE = "oie"
"""The ``head_type`` under which the head is registered with ``register_custom_head``."""

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


@dataclass
class OIEHeadConfig:
    """Hyper-parameters of :class:`OIEHead` (defaults are Multi2OIE's).

    Args:
        n_arg_layers (`int`, *optional*, defaults to 4): attention blocks of the argument tagger.
        n_arg_heads (`int`, *optional*, defaults to 8): attention heads; must divide
            ``2 * hidden_size + pos_emb_dim``.
        pos_emb_dim (`int`, *optional*, defaults to 64): size of the predicate / other / padding embedding.
        d_feedforward (`int`, *optional*, defaults to 2048): inner size of each block's feed-forward layer.
        attention_dropout (`float`, *optional*, defaults to 0.1): dropout inside the blocks.
        attention_probs_dropout (`float`, *optional*): dropout on the blocks' attention probabilities; defaults to
            ``attention_dropout``. ``0.0`` lets CPU attention use its fused kernel (with dropout it falls back to
            the unfused one); the residual / feed-forward dropout stays.
        pred_dropout (`float`, *optional*, defaults to 0.0): dropout before the predicate classifier.
        arg_dropout (`float`, *optional*, defaults to 0.3): dropout before the argument classifier.
        activation (`str`, *optional*, defaults to `"relu"`): ``"relu"`` or ``"gelu"``.
        predicate_loss_weight (`float`, *optional*, defaults to 1.0): weight of the predicate loss.
        argument_loss_weight (`float`, *optional*, defaults to 1.0): weight of the argument loss.
    """

    n_arg_layers: int = 4
    n_arg_heads: int = 8
    pos_emb_dim: int = 64
    d_feedforward: int = 2048
    attention_dropout: float = 0.1
    attention_probs_dropout: float | None = None
    pred_dropout: float = 0.0
    arg_dropout: float = 0.3
    activation: Literal["relu", "gelu"] = "relu"
    predicate_loss_weight: float = 1.0
    argument_loss_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("n_arg_layers", "n_arg_heads", "pos_emb_dim", "d_feedforward"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
        for name in ("attention_dropout", "attention_probs_dropout", "pred_dropout", "arg_dropout"):
            value = getattr(self, name)
            if value is None and name == "attention_probs_dropout":
                continue
            if not 0.0 <= value < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {value!r}.")
        for name in ("predicate_loss_weight", "argument_loss_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)!r}.")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"`activation` must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}.")

    @classmethod
    def from_kwargs(cls, **kwargs) -> OIEHeadConfig:
        """Build from saved head-config keys: bookkeeping keys are removed, unknown keys warn and are dropped."""
        kwargs.pop("molora_version", None)
        kwargs.pop("head_type", None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            logger.warning("Ignoring unknown OIE head config keys %s.", unknown)
        return cls(**{k: v for k, v in kwargs.items() if k in known})


@dataclass
class OIEHeadOutput(ModelOutput):
    """Output of :class:`OIEHead`.

    Args:
        loss (`torch.FloatTensor`, *optional*): weighted sum of both losses, when labels are given.
        predicate_loss / argument_loss (`torch.FloatTensor`, *optional*): the two cross-entropies.
        predicate_logits (`torch.FloatTensor` of shape `(batch, seq_len, 3)`): predicate tag scores.
        argument_logits (`torch.FloatTensor` of shape `(batch, seq_len, 9)`, *optional*): argument tag scores,
            when a ``predicate_mask`` was given.
        sequence_output (`torch.FloatTensor` of shape `(batch, seq_len, hidden)`): encoder token states, so
            that :meth:`OIEHead.argument_logits` can run for several predicates without re-encoding.
    """

    loss: torch.FloatTensor | None = None
    predicate_loss: torch.FloatTensor | None = None
    argument_loss: torch.FloatTensor | None = None
    predicate_logits: torch.FloatTensor | None = None
    argument_logits: torch.FloatTensor | None = None
    sequence_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class PredicateAttentionBlock(nn.Module):
    """Multi-head attention from every token to the predicate's tokens, then a feed-forward layer.

    Like a Transformer decoder layer without self-attention: queries are the running token states, keys and
    values the fixed argument-tagger inputs, restricted by ``key_mask`` to the predicate.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_feedforward: int,
        dropout: float,
        activation: str,
        probs_dropout: float | None = None,
    ) -> None:
        super().__init__()
        self.d_model, self.n_heads = d_model, n_heads
        self.dropout_p = dropout if probs_dropout is None else probs_dropout
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_feedforward)
        self.linear2 = nn.Linear(d_feedforward, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = activation

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}, activation={self.activation}"

    def forward(self, target: torch.Tensor, source: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """``target`` ``(b, t, d)`` attends to the ``source`` ``(b, s, d)`` positions where ``key_mask`` ``(b, s)`` is
        True (``s`` may differ from ``t``)."""
        b, t, d = target.shape
        h = self.n_heads

        def split(x: torch.Tensor) -> torch.Tensor:  # (b, n, d) -> (b, h, n, d/h); n = t, or s for the source
            return x.view(b, x.shape[1], h, d // h).transpose(1, 2)

        # key_mask: (b, s) bool, True = may be attended -> (b, 1, 1, s) broadcast over heads and queries
        attended = scaled_dot_product_attention(  # float32 under CPU bf16 autocast (its backward is far faster)
            split(self.query(target)),
            split(self.key(source)),
            split(self.value(source)),
            attn_mask=key_mask[:, None, None, :],
            dropout_p=self.dropout_p if self.training else 0.0,
        )
        attended = attended.transpose(1, 2).reshape(b, t, d)  # (b, h, t, d/h) -> (b, t, d)
        x = self.norm1(target + self.dropout(self.out(attended)))
        ff = self.linear2(self.dropout(_ACTIVATIONS[self.activation](self.linear1(x))))
        return self.norm2(x + self.dropout(ff))


class OIEHead(PredictionHead):
    """Multi2OIE predicate + argument taggers (see module docstring).

    Args:
        model: the flex-head `adapters` model the head is added to.
        head_name (`str`): name of the head.
        **config: fields of :class:`OIEHeadConfig`.
    """

    def __init__(self, model, head_name: str, **config) -> None:
        super().__init__(head_name)
        cfg = OIEHeadConfig.from_kwargs(**config)
        self.config = {"head_type": OIE_HEAD_TYPE, **asdict(cfg), "molora_version": __version__}
        self.head_config = cfg
        hidden = model.config.hidden_size
        d_model = 2 * hidden + cfg.pos_emb_dim
        if d_model % cfg.n_arg_heads:
            raise ValueError(
                f"`n_arg_heads`={cfg.n_arg_heads} must divide 2 * hidden_size + pos_emb_dim = {d_model}; "
                "change `n_arg_heads` or `pos_emb_dim`."
            )
        self.build(hidden, d_model, cfg)
        self.train(model.training)

    def build(self, hidden: int, d_model: int, cfg: OIEHeadConfig) -> None:
        self.pred_dropout = nn.Dropout(cfg.pred_dropout)
        self.pred_classifier = nn.Linear(hidden, len(PRED_LABELS))
        # 0 = padding, 1 = other token, 2 = predicate token
        self.position_embedding = nn.Embedding(3, cfg.pos_emb_dim, padding_idx=0)
        self.arg_blocks = nn.ModuleList(
            PredicateAttentionBlock(
                d_model,
                cfg.n_arg_heads,
                cfg.d_feedforward,
                cfg.attention_dropout,
                cfg.activation,
                cfg.attention_probs_dropout,
            )
            for _ in range(cfg.n_arg_layers)
        )
        self.arg_dropout = nn.Dropout(cfg.arg_dropout)
        self.arg_classifier = nn.Linear(d_model, len(ARG_LABELS))

    def predicate_logits(self, sequence_output: torch.Tensor) -> torch.Tensor:
        """Predicate tag scores ``(batch, seq_len, 3)`` from encoder states ``(batch, seq_len, hidden)``."""
        return self.pred_classifier(self.pred_dropout(sequence_output))

    def argument_logits(
        self,
        sequence_output: torch.Tensor,
        predicate_mask: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        compact_keys: bool = False,
    ) -> torch.Tensor:
        """Argument tag scores ``(batch, seq_len, 9)`` for one predicate per row.

        Args:
            sequence_output (`torch.Tensor` of shape `(batch, seq_len, hidden)`): encoder states.
            predicate_mask (`torch.Tensor` of shape `(batch, seq_len)`): 1 on the predicate's sub-words.
                A row without any predicate token attends to all its tokens instead (never NaN).
            attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): 1 on real tokens.
            compact_keys (`bool`, *optional*, defaults to `False`): give the attention blocks' keys and values only
                the positions each row attends to (its predicate's sub-words, usually 1-3 of ``seq_len``) instead of
                every position with the others masked. The same scores up to float rounding (the masked keys
                weigh exactly 0 either way) for about 40% fewer FLOPs: the key and value projections shrink from
                ``seq_len`` to a few rows. Inference (:class:`~molora_adapters.oie.pipeline.OIEPipeline`) uses it;
                training keeps the full form.
        """
        pred = predicate_mask.bool()
        valid = attention_mask.bool() if attention_mask is not None else torch.ones_like(pred)
        pred = pred & valid
        weights = pred.to(sequence_output.dtype).unsqueeze(-1)  # (b, t, 1)
        pred_mean = (sequence_output * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (b, hidden)
        position_ids = torch.where(valid, 1 + pred.long(), torch.zeros_like(pred, dtype=torch.long))
        features = torch.cat(
            [
                sequence_output,
                pred_mean.unsqueeze(1).expand_as(sequence_output),
                self.position_embedding(position_ids),
            ],
            dim=-1,
        )  # (b, t, 2 * hidden + pos_emb_dim)
        has_pred = pred.any(dim=1, keepdim=True)
        key_mask = torch.where(has_pred, pred, valid)  # (b, t)
        source, source_mask = (
            _attended_positions(features, key_mask) if compact_keys else (features, key_mask)
        )
        x = features
        for block in self.arg_blocks:
            x = block(x, source, source_mask)
        return self.arg_classifier(self.arg_dropout(x))

    def forward(
        self,
        outputs,
        cls_output=None,
        attention_mask=None,
        return_dict=False,
        predicate_mask: torch.Tensor | None = None,
        predicate_labels: torch.Tensor | None = None,
        argument_labels: torch.Tensor | None = None,
        predicate_rows: torch.Tensor | None = None,
        **kwargs,
    ):
        """Both taggers; ``predicate_rows`` (``(n_predicates,)``) gives each ``predicate_mask`` /
        ``argument_labels`` row its sentence row, so one encoder pass serves all predicates of a sentence
        (without it, row ``i`` of the masks belongs to sentence ``i``)."""
        sequence_output = outputs[0]
        pred_logits = self.predicate_logits(sequence_output)
        arg_logits = None
        if predicate_mask is not None:
            arg_states, arg_attention = sequence_output, attention_mask
            if predicate_rows is not None:
                rows = predicate_rows.to(sequence_output.device)
                arg_states = sequence_output.index_select(0, rows)  # (n_predicates, t, hidden)
                if attention_mask is not None:
                    arg_attention = attention_mask.index_select(0, rows)
            arg_logits = self.argument_logits(arg_states, predicate_mask, arg_attention)

        pred_loss = _token_ce(pred_logits, predicate_labels)
        arg_loss = _token_ce(arg_logits, argument_labels) if arg_logits is not None else None
        weighted = (
            (self.head_config.predicate_loss_weight, pred_loss),
            (self.head_config.argument_loss_weight, arg_loss),
        )
        losses = [weight * part for weight, part in weighted if part is not None]
        loss = sum(losses) if losses else None

        if return_dict:
            return OIEHeadOutput(
                loss=loss,
                predicate_loss=pred_loss,
                argument_loss=arg_loss,
                predicate_logits=pred_logits,
                argument_logits=arg_logits,
                sequence_output=sequence_output,
                hidden_states=getattr(outputs, "hidden_states", None),
                attentions=getattr(outputs, "attentions", None),
            )
        out = (pred_logits,) if arg_logits is None else (pred_logits, arg_logits)
        return (loss, *out) if loss is not None else out


def _attended_positions(features: torch.Tensor, key_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of ``features`` ``(b, t, d)`` where ``key_mask`` ``(b, t)`` is True, in order, packed to the front:
    ``(b, s, d)`` and their ``(b, s)`` mask, ``s`` the most True positions of a row (padding rows masked)."""
    counts = key_mask.sum(dim=1)  # (b,)
    s = int(counts.max())
    if s == key_mask.shape[1]:
        return features, key_mask
    # attended positions first, in sentence order (a stable sort of 0 = attended, 1 = not)
    order = (~key_mask).to(torch.int8).argsort(dim=1, stable=True)[:, :s]  # (b, s)
    packed = features.gather(1, order.unsqueeze(-1).expand(-1, -1, features.shape[-1]))  # (b, s, d)
    mask = torch.arange(s, device=key_mask.device)[None, :] < counts[:, None]  # (b, s)
    return packed, mask


def _token_ce(logits: torch.Tensor | None, labels: torch.Tensor | None) -> torch.Tensor | None:
    """Token cross-entropy over positions whose label is not ``IGNORE_INDEX`` (0 when there are none)."""
    if logits is None or labels is None:
        return None
    labels = labels.to(logits.device)
    if not bool((labels != IGNORE_INDEX).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)


def register_oie_head(model) -> None:
    """Register :class:`OIEHead` as custom head type ``"oie"`` on ``model`` (idempotent).

    Needed before ``load_head`` / ``load_adapter(..., with_head=True)`` of a saved OIE head on a fresh model.

    Args:
        model: a flex-head `adapters` model (e.g. from ``AutoAdapterModel``).
    """
    register_custom_head_class(model, OIE_HEAD_TYPE, OIEHead)


def add_oie_head(
    model, head_name: str, *, overwrite_ok: bool = False, set_active: bool = True, **config
) -> OIEHead:
    """Add a Multi2OIE head named ``head_name`` to ``model`` (registering the head type first).

    Args:
        model: a flex-head `adapters` model.
        head_name (`str`): name of the head; use the adapter's name so ``save_adapter(..., with_head=True)``
            saves it.
        overwrite_ok (`bool`, *optional*, defaults to `False`): replace an existing head of that name.
        set_active (`bool`, *optional*, defaults to `True`): make it the active head.
        **config: fields of :class:`OIEHeadConfig`.
    """
    OIEHeadConfig.from_kwargs(**config)  # validate before touching the model
    register_oie_head(model)
    model.add_custom_head(
        OIE_HEAD_TYPE, head_name, overwrite_ok=overwrite_ok, set_active=set_active, **config
    )
    return model.heads[head_name]
