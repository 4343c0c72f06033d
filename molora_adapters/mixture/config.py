"""Configuration of a Mixture-of-LoRA: which experts, how many per token, how the routers behave."""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from ..version import __version__
from .compute import ExpertCompute, parse_compute

logger = logging.getLogger(__name__)


class Granularity(str, enum.Enum):
    """What one routing decision covers.

    - ``token``: every token of every sequence is routed on its own layer input.
    - ``sentence``: one decision per sequence, on the attention-masked mean of the layer input.
    - ``language``: hard routing to the expert named by the example's ``language_ids`` forward argument;
      the learned routers are still trained when ``language_loss_coef > 0`` (so they can route at inference).
    """

    TOKEN = "token"
    SENTENCE = "sentence"
    LANGUAGE = "language"


class DropoutSite(str, enum.Enum):
    """Where the experts' LoRA dropout (``LoRAConfig.dropout``) acts in the mixture's training forward.

    - ``input``: on the layer input, before the A matrices (adapters' LoRA): one mask of the input width per adapted
      linear (384-1536 columns on the default encoder); it also rules out the router + A fused matmul.
    - ``rank``: on the experts' gated rank activations, between A and B (``E * r`` columns, 48 on the default
      run): the same rate, 8-32x fewer random numbers, and the router + A matmul stays fused.
    """

    INPUT = "input"
    RANK = "rank"


def check_top_k(top_k: object, n_experts: int) -> None:
    """The one validator of ``top_k`` (mixture configs and ``Mixture`` blocks): an int in ``[1, n_experts]``."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= n_experts:
        raise ValueError(
            f"`top_k` must be an int in [1, {n_experts}] (the number of experts), got {top_k!r}."
        )


@dataclass
class MixtureConfig:
    """Settings of one Mixture-of-LoRA (one router per adapted linear layer, shared expert set).

    Args:
        experts (`list[str]`): names of the LoRA expert adapters, in routing order.
        top_k (`int`, *optional*, defaults to `min(2, len(experts))`): experts mixed per routing decision. The other
            experts contribute exactly zero.
        renormalize (`bool`, *optional*, defaults to `True`): the selected gates are the softmax weights renormalised
            over the selected experts (Mixtral). With ``top_k=1`` that gate is always 1, so the routers then learn
            only from the auxiliary losses; ``False`` keeps the raw softmax weights (Switch Transformer).
        granularity (`Granularity` or `str`, *optional*, defaults to `"token"`): see :class:`Granularity`.
        temperature (`float`, *optional*, defaults to 1.0): router logits are divided by it before the softmax.
        jitter_noise (`float`, *optional*, defaults to 0.0): training-time multiplicative jitter of the router input,
            drawn from ``U(1 - eps, 1 + eps)`` (Switch Transformer / Mixtral ``router_jitter_noise``).
        router_init_std (`float`, *optional*, defaults to 0.02): std of the normal router initialisation. It must be
            positive: an all-zero router ties every expert and top-k would always pick the first ones.
        load_balancing_coef (`float`, *optional*, defaults to 0.01): weight of the Switch/Mixtral balancing loss.
        router_z_loss_coef (`float`, *optional*, defaults to 0.0): weight of the ST-MoE router z-loss.
        language_loss_coef (`float`, *optional*, defaults to 0.0): weight of the router cross-entropy toward the
            example's language expert, used when ``language_ids`` are passed to the forward.
        languages (`dict[str, str]`, *optional*): language code -> expert name, for ``language_ids`` given as strings.
            Defaults to each expert being its own language code.
        compute (`ExpertCompute` or `str`, *optional*, defaults to `"auto"`): how every layer computes its experts:
            ``"dense"`` (all experts in rank space), ``"sparse"`` (only the selected ones, grouped per expert), or
            ``"auto"``: the measured cost switch of :func:`~molora_adapters.mixture.compute.use_sparse`, decided once
            per layer, ``top_k`` and dtype. Every path gives the same result.
        dropout_site (`DropoutSite` or `str`, *optional*, defaults to `"input"`): where the experts' LoRA dropout
            acts in training (see :class:`DropoutSite`); its rate is the experts' ``LoRAConfig.dropout``.
    """

    experts: list[str]
    top_k: int | None = None
    renormalize: bool = True
    granularity: Granularity | str = Granularity.TOKEN
    temperature: float = 1.0
    jitter_noise: float = 0.0
    router_init_std: float = 0.02
    load_balancing_coef: float = 0.01
    router_z_loss_coef: float = 0.0
    language_loss_coef: float = 0.0
    languages: dict[str, str] = field(default_factory=dict)
    compute: ExpertCompute | str = ExpertCompute.AUTO
    dropout_site: DropoutSite | str = DropoutSite.INPUT

    def __post_init__(self) -> None:
        self.experts = list(self.experts)
        if not self.experts or not all(isinstance(e, str) and e for e in self.experts):
            raise ValueError(f"`experts` must be a non-empty list of adapter names, got {self.experts!r}.")
        dupes = sorted({e for e in self.experts if self.experts.count(e) > 1})
        if dupes:
            raise ValueError(f"`experts` must be unique, got duplicates {dupes} in {self.experts!r}.")
        bad = [e for e in self.experts if "." in e or "," in e]
        if bad:
            raise ValueError(f"Expert names may not contain '.' or ',', got {bad!r}; rename the adapters.")
        if self.top_k is None:
            self.top_k = min(2, len(self.experts))
        check_top_k(self.top_k, len(self.experts))
        try:
            self.granularity = Granularity(self.granularity)
        except ValueError:
            raise ValueError(
                f"`granularity` must be one of {[g.value for g in Granularity]}, got {self.granularity!r}."
            ) from None
        if not self.temperature > 0:
            raise ValueError(f"`temperature` must be > 0, got {self.temperature!r}.")
        if not 0 <= self.jitter_noise < 1:
            raise ValueError(f"`jitter_noise` must be in [0, 1), got {self.jitter_noise!r}.")
        if not self.router_init_std > 0:
            raise ValueError(
                f"`router_init_std` must be > 0 (a zero router ties all experts), got {self.router_init_std!r}."
            )
        for name in ("load_balancing_coef", "router_z_loss_coef", "language_loss_coef"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)!r}.")
        self.compute = parse_compute(self.compute, "compute")
        try:
            self.dropout_site = DropoutSite(self.dropout_site)
        except ValueError:
            raise ValueError(
                f"`dropout_site` must be one of {[d.value for d in DropoutSite]}, got {self.dropout_site!r}."
            ) from None
        self.languages = dict(self.languages) or {e: e for e in self.experts}
        unknown = sorted(set(self.languages.values()) - set(self.experts))
        if unknown:
            raise ValueError(f"`languages` maps to unknown experts {unknown}; experts are {self.experts!r}.")

    @property
    def n_experts(self) -> int:
        return len(self.experts)

    def expert_index(self, language_or_expert: str) -> int:
        """Index of the expert for a language code (via ``languages``) or an expert name."""
        expert = self.languages.get(language_or_expert, language_or_expert)
        if expert not in self.experts:
            raise ValueError(
                f"Unknown language or expert `{language_or_expert}`; known languages: {sorted(self.languages)}, "
                f"experts: {self.experts}."
            )
        return self.experts.index(expert)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["granularity"] = Granularity(self.granularity).value
        d["compute"] = ExpertCompute(self.compute).value
        d["dropout_site"] = DropoutSite(self.dropout_site).value
        d["molora_version"] = __version__
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MixtureConfig:
        """Build from a dict, warning about (and dropping) keys this version does not know."""
        data = dict(data)
        data.pop("molora_version", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            logger.warning("Ignoring unknown MixtureConfig keys %s (saved by another version?).", unknown)
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
