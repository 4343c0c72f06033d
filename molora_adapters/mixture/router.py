"""Routers: one small linear gate per adapted linear layer, plus the precomputed expert layout of that layer."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .compute import ExpertCompute, forced_compute, use_sparse
from .config import MixtureConfig

# Parameter paths of routers contain this prefix; save/load filters and trainers rely on it.
ROUTERS_ATTR = "mixture_routers"


def layer_key(layer: nn.Module) -> str:
    """Key of an adapted linear layer, unique within a model: ``"{layer_idx}-{location}[-{attn}]"``.

    Module names may not contain dots, hence the dashes.
    """
    key = f"{layer.layer_idx}-{layer.location_key}"
    attn_key = getattr(layer, "attn_key", None)
    return f"{key}-{attn_key}" if attn_key else key


class ExpertLayout(NamedTuple):
    """Which experts a layer has and how their LoRA ranks stack (tensors on the layer's device)."""

    expert_index: torch.Tensor  # (E_present,) index of each present expert in the mixture's expert order
    missing_mask: torch.Tensor  # (E,) True where the expert has no module here: its logit is masked to -inf
    expert_scaling: torch.Tensor  # (E_present,) LoRA scaling alpha / r, folded into the stacked B
    rank_owner: (
        torch.Tensor
    )  # (R,) for each stacked rank row, the position of its expert among the present ones
    column_scaling: torch.Tensor  # (R,) the scaling of each stacked rank column's expert


class Router(nn.Module):
    """Linear gate producing one logit per expert of the mixture, plus the expert layout of its layer.

    Its :class:`ExpertLayout` says which experts exist in this layer and how their LoRA ranks concatenate, so the
    layer can run all experts as one stacked matmul.

    Args:
        in_features (`int`): input size of the adapted linear layer.
        config (`MixtureConfig`): the mixture's configuration.
        expert_ranks (`list[int | None]`): the rank of each expert in this layer, ``None`` where the expert has no
            LoRA module here (e.g. another ``attn_matrices`` or ``leave_out`` setting).
        expert_scalings (`list[float | None]`): each expert's LoRA scaling ``alpha / r`` in this layer.
    """

    def __init__(
        self,
        in_features: int,
        config: MixtureConfig,
        expert_ranks: list[int | None],
        expert_scalings: list[float | None],
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        n = config.n_experts
        if len(expert_ranks) != n or len(expert_scalings) != n:
            raise ValueError(
                f"Expected {n} expert ranks and scalings, got {len(expert_ranks)} / {len(expert_scalings)}."
            )
        self.in_features = in_features
        self.n_experts = n
        self.jitter_noise = config.jitter_noise
        self.weight = nn.Parameter(torch.empty(n, in_features, device=device, dtype=dtype))
        nn.init.normal_(self.weight, std=config.router_init_std)

        present = [i for i, r in enumerate(expert_ranks) if r is not None]
        ranks = [expert_ranks[i] for i in present]
        self.present_experts = [config.experts[i] for i in present]
        self.all_present = len(present) == n
        self.equal_ranks = len(set(ranks)) == 1
        self.rank = ranks[0] if self.equal_ranks else None
        self._present, self._ranks = present, ranks
        self._scalings = [float(expert_scalings[i]) for i in present]
        # one scaling for all experts (the usual case): folded into B as a plain float
        self.uniform_scaling = self._scalings[0] if len(set(self._scalings)) == 1 else None
        self._missing = [r is None for r in expert_ranks]
        self._layouts: dict[torch.device, ExpertLayout] = {}
        self.compute = ExpertCompute(config.compute)
        self._sparse: dict[tuple[int, torch.dtype], bool] = {}  # (top_k, dtype) -> the path decided for it

    def __setstate__(self, state: dict) -> None:  # pickles from before the `compute` setting
        super().__setstate__(state)
        self.__dict__.setdefault("compute", ExpertCompute.AUTO)
        self.__dict__.setdefault("_sparse", {})

    def sparse_path(self, top_k: int, dtype: torch.dtype) -> bool:
        """Whether this layer runs its experts sparse (else dense) for ``top_k`` selected experts in ``dtype``:
        the mixture's ``compute`` setting, decided once per ``(top_k, dtype)`` (a path forced by
        :func:`~molora_adapters.mixture.compute.expert_compute` in this thread takes precedence)."""
        forced = forced_compute()
        if forced is not None:
            return use_sparse(len(self._present), top_k, self.equal_ranks, self.rank, dtype, forced)
        decided = self._sparse.get((top_k, dtype))
        if decided is None:
            decided = use_sparse(len(self._present), top_k, self.equal_ranks, self.rank, dtype, self.compute)
            self._sparse[top_k, dtype] = decided
        return decided

    def layout(self, device: torch.device) -> ExpertLayout:
        """The expert layout as tensors on ``device``, built once per device.

        Kept out of the state dict and out of module buffers so that meta-device initialisation
        (``from_pretrained``) cannot leave it uninitialised.
        """
        layout = self._layouts.get(device)
        if layout is None:
            # ordinary tensors even when first built under torch.inference_mode() (an inference pipeline), so that a
            # later training forward can save them for backward
            with torch.inference_mode(False):
                layout = self._build_layout(device)
            self._layouts[device] = layout
        return layout

    def _build_layout(self, device: torch.device) -> ExpertLayout:
        ranks = torch.tensor(self._ranks, device=device)
        scaling = torch.tensor(self._scalings, dtype=torch.float32, device=device)
        return ExpertLayout(
            expert_index=torch.tensor(self._present, dtype=torch.long, device=device),
            missing_mask=torch.tensor(self._missing, dtype=torch.bool, device=device),
            expert_scaling=scaling,
            rank_owner=torch.repeat_interleave(torch.arange(len(self._ranks), device=device), ranks),
            column_scaling=torch.repeat_interleave(scaling, ranks),
        )

    def forward(self, router_input: torch.Tensor) -> torch.Tensor:
        """Router logits ``(..., n_experts)`` in float32 for ``router_input`` of shape ``(..., in_features)``."""
        if self.training and self.jitter_noise > 0:
            noise = torch.empty_like(router_input).uniform_(1.0 - self.jitter_noise, 1.0 + self.jitter_noise)
            router_input = router_input * noise
        return self.finish(nn.functional.linear(router_input.to(self.weight.dtype), self.weight))

    def finish(self, raw_logits: torch.Tensor) -> torch.Tensor:
        """``router_input @ weight.T`` ``(..., n_experts)`` computed elsewhere (e.g. fused with the experts' matmul)
        -> the router logits: float32, ``-inf`` for experts absent from this layer."""
        logits = raw_logits.float()
        if not self.all_present:
            logits = logits.masked_fill(self.layout(logits.device).missing_mask, float("-inf"))
        return logits

    def extra_repr(self) -> str:
        ranks = f"r={self.rank}" if self.equal_ranks else f"r_total={sum(self._ranks)}"
        return f"in_features={self.in_features}, experts={self.present_experts}, {ranks}"


class MixtureRouters(nn.ModuleDict):
    """All routers of one mixture, keyed by :func:`layer_key`, with the mixture's config attached.

    Args:
        config (`MixtureConfig`): the mixture's configuration.
        routers (`dict[str, Router]`, *optional*): the routers, keyed by :func:`layer_key`.
        layers (`dict[str, nn.Module]`, *optional*): the adapted ``LoRALinear`` of each router key.
    """

    def __init__(
        self,
        config: MixtureConfig,
        routers: dict[str, Router] | None = None,
        layers: dict[str, nn.Module] | None = None,
    ):
        super().__init__(routers or {})
        self.config = config
        # plain attributes, not submodules (the layers belong to the model): deepcopy maps them to the copied layers
        self.layers: dict[str, nn.Module] = dict(layers or {})

    def __setstate__(self, state: dict) -> None:  # pickles from before `layers`
        super().__setstate__(state)
        self.__dict__.setdefault("layers", {})
        self.__dict__.pop("groups", None)  # the q/v shared-input routing of 0.x, removed

    def extra_repr(self) -> str:
        c = self.config
        return f"experts={c.experts}, top_k={c.top_k}, granularity={c.granularity.value}"
