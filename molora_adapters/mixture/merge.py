"""Fold a fixed weighted mix of a mixture's experts into the base weights, and export the result as a plain
``transformers`` model (peft's ``merge_and_unload``).

With fixed gates ``w_i`` a mixture layer computes ``W x + sum_i w_i * scaling_i * B_i A_i x``, which is linear in the
input, so it equals one linear layer with weight ``W + sum_i w_i * scaling_i * B_i A_i``: the merged model computes
exactly what the mixture computes under that fixed mix (adapters' ``Average(*experts, weights=w)`` setup), with no
adapter in the forward pass. A learned router is input-dependent and cannot be folded; a fixed mix (for instance
the average routing on a language's data, see :func:`~molora_adapters.mixture.collect_routing_statistics`) can.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from adapters.methods.lora import LoRALinear

from ..utils.io import atomic_directory
from .config import MixtureConfig

__all__ = ["expert_mix", "export_merged_model", "merge_expert_mix"]


def expert_mix(config: MixtureConfig, weights: Mapping[str, float] | Sequence[float]) -> dict[str, float]:
    """``{expert: weight}`` from per-expert weights (a sequence in expert order, or a mapping keyed by expert name or
    language code); experts left out of a mapping get 0. Raises ``ValueError`` on a bad weight.

    Args:
        config (`MixtureConfig`): the mixture.
        weights (`Mapping[str, float]` or `Sequence[float]`): the fixed gates.
    """
    if isinstance(weights, Mapping):
        mix = dict.fromkeys(config.experts, 0.0)
        for key, w in weights.items():
            mix[config.experts[config.expert_index(key)]] += float(w)
    else:
        weights = list(weights)
        if len(weights) != config.n_experts:
            raise ValueError(
                f"`weights` must give one weight per expert ({config.n_experts}: {config.experts}), "
                f"got {len(weights)}."
            )
        mix = {e: float(w) for e, w in zip(config.experts, weights, strict=True)}
    bad = {e: w for e, w in mix.items() if not math.isfinite(w) or w < 0}
    if bad:
        raise ValueError(f"`weights` must be finite and >= 0, got {bad}.")
    if not any(mix.values()):
        raise ValueError("`weights` are all 0; give at least one expert a positive weight.")
    return mix


@torch.no_grad()
def merge_expert_mix(model: torch.nn.Module, mix: Mapping[str, float]) -> int:
    """Add ``sum_i w_i * scaling_i * B_i A_i`` to every LoRA linear layer of ``model`` in place; returns the number
    of layers changed. The experts stay loaded but must not be active afterwards (their delta is in the weights).

    Args:
        model (`torch.nn.Module`): an ``adapters`` model with no adapter active or merged.
        mix (`Mapping[str, float]`): expert name -> weight (see :func:`expert_mix`).
    """
    changed = 0
    for module in model.modules():
        if not isinstance(module, LoRALinear):
            continue
        present = [(e, w) for e, w in mix.items() if e in module.loras and w != 0]
        if not present:
            continue
        if module.merged:
            raise ValueError(
                f"A LoRA layer already has `{module.merged}` merged; call `model.reset_adapter()` first."
            )
        delta = torch.zeros_like(module.weight, dtype=torch.float32)
        for expert, w in present:
            lora = module.loras[expert]
            if lora.composition_mode != "add" or lora.use_gating or getattr(lora, "use_dora", False):
                raise ValueError(f"Expert `{expert}` is not a plain additive LoRA; only those can be merged.")
            delta += w * lora.scaling * module.maybe_t(lora.delta_w).float()
        module.weight.add_(delta.to(module.weight.dtype))
        changed += 1
    return changed


def _is_adapter_key(key: str) -> bool:
    return any(
        part in key for part in (".loras.", "loras.", "adapters.", "prefix_tuning", "invertible_adapters")
    )


def export_merged_model(
    model, save_directory: str | Path, mix: Mapping[str, float], *, head_name: str | None = None
) -> Path:
    """Write the backbone with ``mix`` merged as a plain ``transformers`` model directory, and the prediction head
    ``head_name`` (default: the active head, if any) beside it in ``head/`` (adapters' ``save_head`` format).

    ``model`` is not changed (a copy is merged). ``AutoModel.from_pretrained(save_directory)`` loads the backbone
    without ``adapters``; ``AutoAdapterModel.from_pretrained(save_directory)`` then ``load_head(save_directory /
    "head")`` restores the full model. The directory is written atomically.

    Args:
        model: an ``adapters`` model.
        save_directory (`str` or `Path`): the output directory (replaced if it exists).
        mix (`Mapping[str, float]`): expert name -> weight (see :func:`expert_mix`).
        head_name (`str`, *optional*): the head to save with it.
    """
    from transformers import AutoConfig, AutoModel

    work = copy.deepcopy(model)
    work.set_active_adapters(None)
    if merge_expert_mix(work, mix) == 0:
        raise ValueError(
            f"None of the experts {sorted(mix)} has a LoRA layer in the model; nothing to merge."
        )
    base = work.base_model
    config = base.config.to_dict()
    for key in ("adapters", "prediction_heads", "custom_heads", "architectures"):
        config.pop(key, None)
    plain = AutoModel.from_config(AutoConfig.for_model(**config))
    own = plain.state_dict()
    state = {k: v for k, v in base.state_dict().items() if k in own and not _is_adapter_key(k)}
    missing = sorted(set(own) - set(state))
    if missing:
        raise ValueError(
            f"The backbone has no weights for {missing[:5]}; cannot export it as `{type(plain).__name__}`."
        )
    plain.load_state_dict(state, strict=True)
    if head_name is None and getattr(work, "heads", None):
        head_name = work.active_head
    with atomic_directory(save_directory) as tmp:
        plain.save_pretrained(tmp)
        if head_name is not None:
            work.save_head(str(Path(tmp) / "head"), head_name)
    return Path(save_directory)
