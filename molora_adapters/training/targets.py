"""What a stage trains: named parameter groups of an ``adapters`` model and the stage-target registry.

A *target* maps a model to the names (as in ``model.named_parameters()``) of the parameters a stage trains.
The built-in targets follow MT4CrossOIE (arXiv 2308.06552, Sec. 3.3):

- ``"embeddings"``: the word-embedding matrix (the shared multilingual semantic space); position and token-type
  embeddings only when the stage sets ``train_position_embeddings=True``.
- ``"backbone"``: every other pre-trained parameter of ``model.base_model`` (position/token-type embeddings,
  embedding LayerNorm, encoder layers, pooler), never adapter weights.
- ``"mixture"``, ``"mixture_experts"``, ``"mixture_routers"``: the Mixture-of-LoRA experts and/or routers.
- ``"heads"``: parameters outside ``model.base_model`` that are not adapter weights (``adapters`` prediction heads, or
  the ``classifier`` of a static ``*ForTokenClassification`` model).

New targets are added with [`register_stage_target`]. A stage may also name a predicate
``(name, parameter) -> bool`` instead of a registered target.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from torch import nn

from ..registry import Registry

ParameterPredicate = Callable[[str, nn.Parameter], bool]


class Stage(Protocol):
    """What a target resolver reads of a :class:`~molora_adapters.training.stages.Stage` (declared here, so that
    ``targets`` does not import ``stages``, which imports ``targets``)."""

    name: str
    train: Sequence[str | ParameterPredicate]
    mixture: str | None
    train_position_embeddings: bool


TargetResolver = Callable[[nn.Module, Stage], set[str]]

STAGE_TARGETS: Registry[TargetResolver] = Registry("stage target")

# Module-container names under which `adapters` (and our mixture) keep adapter weights. Used together with
# `AdapterLayerBase.adapter_modules_name` so that adapter weights never count as "backbone".
_ADAPTER_CONTAINERS = frozenset(
    {
        "adapters",
        "adapter_fusion_layer",
        "loras",
        "prefixes",
        "prefix_tuning",
        "prompt_tuning",
        "refts",
        "invertible_adapters",
        "shared_parameters",
        "mixture_routers",
    }
)
_POSITION_EMBEDDING_NAMES = ("position_embeddings", "token_type_embeddings", "embed_positions")


def register_stage_target(name: str, resolver: TargetResolver | None = None, *, overwrite: bool = False):
    """Register a stage target usable as ``Stage(train=[name])``.

    Args:
        name (`str`): lower-case target name.
        resolver (`Callable[[nn.Module, Stage], set[str]]`, *optional*):
            maps ``(model, stage)`` to parameter names; when omitted, returns a decorator.
        overwrite (`bool`, *optional*, defaults to `False`): replace an existing target of the same name.
    """
    return STAGE_TARGETS.register(name, resolver, overwrite=overwrite)


def adapter_parameter_names(model: nn.Module) -> set[str]:
    """Names of all adapter weights (LoRA, bottleneck, prefix, fusion, mixture experts and routers) in ``model``."""
    from adapters.methods.adapter_layer_base import AdapterLayerBase

    containers = set(_ADAPTER_CONTAINERS)
    for module in model.modules():
        if isinstance(module, AdapterLayerBase) and getattr(module, "adapter_modules_name", None):
            containers.add(module.adapter_modules_name)
    return {n for n, _ in model.named_parameters() if containers.intersection(n.split(".")[:-1])}


def _base_parameter_ids(model: nn.Module) -> set[int]:
    base = getattr(model, "base_model", model)
    return {id(p) for p in base.parameters()}


def word_embedding_names(model: nn.Module) -> set[str]:
    """Names of the input word-embedding matrix (``model.get_input_embeddings().weight``)."""
    emb = model.get_input_embeddings()
    ids = {id(p) for p in emb.parameters()}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def position_embedding_names(model: nn.Module) -> set[str]:
    """Names of position and token-type embedding matrices of the pre-trained encoder."""
    base_ids = _base_parameter_ids(model)
    adapters = adapter_parameter_names(model)
    return {
        n
        for n, p in model.named_parameters()
        if id(p) in base_ids
        and n not in adapters
        and any(part in _POSITION_EMBEDDING_NAMES for part in n.split(".")[:-1])
    }


@register_stage_target("embeddings")
def _embeddings(model: nn.Module, stage: Stage) -> set[str]:
    names = word_embedding_names(model)
    if stage.train_position_embeddings:
        names |= position_embedding_names(model)
    return names


@register_stage_target("backbone")
def _backbone(model: nn.Module, stage: Stage) -> set[str]:
    base_ids = _base_parameter_ids(model)
    excluded = adapter_parameter_names(model) | word_embedding_names(model)
    return {n for n, p in model.named_parameters() if id(p) in base_ids and n not in excluded}


@register_stage_target("heads")
def _heads(model: nn.Module, stage: Stage) -> set[str]:
    base_ids = _base_parameter_ids(model)
    adapters = adapter_parameter_names(model)
    return {n for n, p in model.named_parameters() if id(p) not in base_ids and n not in adapters}


def _mixture_target(include_experts: bool, include_routers: bool) -> TargetResolver:
    def resolve(model: nn.Module, stage: Stage) -> set[str]:
        name = resolve_stage_mixture(model, stage)
        from ..mixture import mixture_parameters

        params = mixture_parameters(
            model, name, include_experts=include_experts, include_routers=include_routers
        )
        return set(params)

    return resolve


register_stage_target("mixture", _mixture_target(True, True))
register_stage_target("mixture_experts", _mixture_target(True, False))
register_stage_target("mixture_routers", _mixture_target(False, True))

MIXTURE_TARGETS = frozenset({"mixture", "mixture_experts", "mixture_routers"})


def mixture_names(model: nn.Module) -> list[str]:
    """Names of the Mixture-of-LoRA blocks added to ``model`` (empty when it has none)."""
    return list(getattr(model, "adapter_mixtures", None) or {})


def resolve_stage_mixture(model: nn.Module, stage: Stage) -> str:
    """The mixture a stage activates: ``stage.mixture``, or the model's only mixture."""
    available = mixture_names(model)
    if stage.mixture is not None:
        if stage.mixture not in available:
            raise ValueError(
                f"Stage `{stage.name}` sets `mixture={stage.mixture!r}`, but the model has "
                f"{'mixtures ' + repr(available) if available else 'no mixture'}. "
                "Add it with `model.add_adapter_mixture(...)` before training."
            )
        return stage.mixture
    if len(available) == 1:
        return available[0]
    if not available:
        raise ValueError(
            f"Stage `{stage.name}` trains the mixture, but the model has no mixture. "
            "Add one with `model.add_adapter_mixture([...])` before training, or drop this stage from the plan."
        )
    raise ValueError(
        f"Stage `{stage.name}` trains the mixture, but the model has several {available!r}; "
        "set `Stage(mixture=...)` to choose one."
    )


def resolve_stage_parameters(model: nn.Module, stage: Stage) -> set[str]:
    """Names of the parameters ``stage`` trains on ``model``.

    Raises:
        ValueError: when a target matches nothing or the stage would train nothing.
    """
    params = dict(model.named_parameters())
    selected: set[str] = set()
    for target in stage.train:
        if callable(target):
            names = {n for n, p in params.items() if target(n, p)}
            label = getattr(target, "__qualname__", repr(target))
        else:
            names = STAGE_TARGETS.get(target)(model, stage)
            label = repr(target)
        if not names:
            raise ValueError(
                f"Stage `{stage.name}`: target {label} matches no parameter of {type(model).__name__}; "
                "check the target, or add the missing head/mixture before training."
            )
        selected |= names
    if not selected:
        raise ValueError(f"Stage `{stage.name}` would train nothing; give it at least one target in `train`.")
    return selected
