"""Model-level API of mixtures (``add_adapter_mixture``, ``train_adapter_mixture``, save/load, merge).

:class:`MixtureModelMixin`'s methods are attached to adapters' ``ModelAdaptersMixin`` by
``molora_adapters._integration``, so every ``adapters`` model (``AutoAdapterModel`` or ``adapters.init``) has them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from adapters import AdapterConfig, LoRAConfig
from adapters.configuration.adapter_config import MTLLoRAConfig
from adapters.methods.lora import LoRALinear, LoRAMergedLinear
from torch import nn

from ..utils.io import atomic_directory
from .composition import Mixture, default_mixture_name
from .config import MixtureConfig
from .hub import resolve_expert_dirs
from .loading import MIXTURE_CONFIG_NAME, MixtureRouterLoader
from .router import ROUTERS_ATTR, MixtureRouters, Router, layer_key

logger = logging.getLogger(__name__)


def _lora_problem(config: Any) -> str | None:
    """Why an adapter config cannot be a mixture expert, or None if it can."""
    if not isinstance(config, LoRAConfig):
        return f"it is a {type(config).__name__}, not a LoRAConfig (all experts must be LoRA adapters)"
    if isinstance(config, MTLLoRAConfig):
        return "MTL-LoRA experts are not supported"
    if config.composition_mode != "add":
        return "IA3 (composition_mode='scale') experts are not supported"
    if config.use_dora:
        return "DoRA experts (use_dora=True) are not supported"
    if config.use_gating:
        return "gated LoRA experts (use_gating=True) are not supported"
    if isinstance(config.vera_d, float) or isinstance(config.vera_b, float):
        return "VeRA experts are not supported"
    return None


class MixtureModelMixin:
    """Mixture-of-LoRA methods for ``adapters`` models (attached at import of ``molora_adapters``)."""

    # ---- helpers -------------------------------------------------------------------------------------------------
    def _mixture_store(self, create: bool = False) -> nn.ModuleDict | None:
        base = self.base_model
        store = getattr(base, ROUTERS_ATTR, None)
        if store is None and create:
            store = nn.ModuleDict()
            base.add_module(ROUTERS_ATTR, store)
        return store

    @property
    def adapter_mixtures(self) -> dict[str, MixtureConfig]:
        """Name -> config of every mixture of this model."""
        store = self._mixture_store()
        return {name: routers.config for name, routers in (store or {}).items()}

    def _get_mixture_routers(self, name: str) -> MixtureRouters:
        store = self._mixture_store()
        if store is None or name not in store:
            known = sorted(store.keys()) if store is not None else []
            raise ValueError(f"No adapter mixture named `{name}`; this model has {known or 'none'}.")
        return store[name]

    def get_adapter_mixture(self, name: str, top_k: int | None = None) -> Mixture:
        """The :class:`Mixture` block that activates mixture ``name`` (optionally with another ``top_k``)."""
        config = self._get_mixture_routers(name).config
        block_name = None if name == default_mixture_name(config.experts) else name
        return Mixture(*config.experts, top_k=top_k or config.top_k, name=block_name)

    def _lora_layers(self) -> list[LoRALinear]:
        layers: list[LoRALinear] = []
        self.apply_to_adapter_layers(
            lambda i, layer: layers.append(layer) if isinstance(layer, LoRALinear) else None
        )
        return layers

    def _build_mixture_routers(self, config: MixtureConfig) -> MixtureRouters:
        routers: dict[str, Router] = {}
        layers: dict[str, LoRALinear] = {}
        for layer in self._lora_layers():
            present = [layer.loras[e] if e in layer.loras else None for e in config.experts]
            if all(p is None for p in present):
                continue
            key = layer_key(layer)
            if key in routers:
                raise ValueError(
                    f"Two adapted layers share the key `{key}`; this model layout is not supported."
                )
            first = next(p for p in present if p is not None)
            layers[key] = layer
            routers[key] = Router(
                layer.in_features,
                config,
                expert_ranks=[p.r if p is not None else None for p in present],
                expert_scalings=[p.scaling if p is not None else None for p in present],
                device=layer.weight.device,
                dtype=first.lora_A.dtype,
            )
        if not routers:
            raise ValueError(f"None of the experts {config.experts} adapts any linear layer of this model.")
        return MixtureRouters(config, routers, layers)

    def _register_mixture(self, name: str, config: MixtureConfig) -> None:
        """Create the routers of ``name`` and record its config in the model's adapters config."""
        self._ensure_mixture_dispatch()  # attached by the seam: layers built before the plugin was imported
        self._mixture_store(create=True)[name] = self._build_mixture_routers(config)
        self.adapters_config.mixtures[name] = config.to_dict()

    def _check_experts(self, config: MixtureConfig, expert_config: Any, create_missing: bool) -> list[str]:
        """Validate everything before any module is added; returns the experts that must be created."""
        if any(isinstance(m, LoRAMergedLinear) for m in self.modules()):
            raise ValueError(
                "This model fuses its attention projections (LoRAMergedLinear, e.g. GPT-2's c_attn); mixtures need "
                "separate q/k/v linears. Use a model with split projections (BERT, XLM-R, Llama, ...)."
            )
        missing = [e for e in config.experts if e not in self.adapters_config]
        if missing and not create_missing:
            raise ValueError(
                f"Unknown expert adapters {missing}; add them first or pass `create_missing=True`."
            )
        for expert in config.experts:
            if expert in self.adapters_config:
                problem = _lora_problem(AdapterConfig.load(self.adapters_config.get(expert)))
                if problem:
                    raise ValueError(f"Adapter `{expert}` cannot be a mixture expert: {problem}.")
        if missing:
            problem = _lora_problem(AdapterConfig.load(expert_config))
            if problem:
                raise ValueError(
                    f"`expert_config` {expert_config!r} cannot create mixture experts: {problem}."
                )
        return missing

    def _check_dropout(self, config: MixtureConfig) -> None:
        rates = {e: float(self.adapters_config.match(e, LoRAConfig).dropout) for e in config.experts}
        if len(set(rates.values())) > 1:
            raise ValueError(
                f"Mixture experts must share one LoRA `dropout` (applied once to the shared input), got {rates}."
            )

    # ---- public API ----------------------------------------------------------------------------------------------
    def add_adapter_mixture(
        self,
        experts: list[str] | tuple[str, ...],
        name: str | None = None,
        top_k: int | None = None,
        config: MixtureConfig | dict | None = None,
        expert_config: str | dict | LoRAConfig = "lora",
        create_missing: bool = True,
        overwrite_ok: bool = False,
        set_active: bool = False,
        **config_kwargs: Any,
    ) -> str:
        """Add a Mixture-of-LoRA: one LoRA expert per name plus one learned router per adapted linear layer.

        Experts are ordinary ``LoRAConfig`` adapters: existing ones are reused, missing ones are created with
        ``expert_config``. Everything is validated before the model is changed.

        Args:
            experts (`list[str]`): expert adapter names, e.g. language codes ``["en", "de", "zh"]``.
            name (`str`, *optional*): the mixture's name; defaults to ``",".join(experts)``.
            top_k (`int`, *optional*): experts mixed per routing decision (default: ``config.top_k``, else
                ``min(2, len(experts))``).
            config (`MixtureConfig` or `dict`, *optional*): router settings; ``experts`` / ``top_k`` args win.
            expert_config (`str`, `dict` or `LoRAConfig`, *optional*, defaults to `"lora"`): config of created experts.
            create_missing (`bool`, *optional*, defaults to `True`): create experts that do not exist yet; if False,
                unknown expert names raise.
            overwrite_ok (`bool`, *optional*, defaults to `False`): replace an existing mixture of the same name.
            set_active (`bool`, *optional*, defaults to `False`): activate the mixture.
            **config_kwargs: further :class:`MixtureConfig` fields, e.g. ``granularity="sentence"``.

        Returns:
            `str`: the mixture's name.
        """
        if isinstance(experts, str) or not isinstance(experts, (list, tuple)):
            raise ValueError(f"`experts` must be a list of adapter names, got {experts!r}.")
        base = config.to_dict() if isinstance(config, MixtureConfig) else dict(config or {})
        base.pop("molora_version", None)
        base.update(config_kwargs)
        base["experts"] = list(experts)
        if top_k is not None:
            base["top_k"] = top_k
        cfg = MixtureConfig(**base)
        name = name or default_mixture_name(cfg.experts)
        if "." in name or not name:
            raise ValueError(f"Mixture `name` must be non-empty and contain no '.', got {name!r}.")
        store = self._mixture_store()
        if store is not None and name in store:
            if not overwrite_ok:
                raise ValueError(f"A mixture named `{name}` exists; pass `overwrite_ok=True` to replace it.")
            self.delete_adapter_mixture(name)
        missing = self._check_experts(cfg, expert_config, create_missing)
        for expert in missing:
            self.add_adapter(expert, config=expert_config)
        try:
            self._check_dropout(cfg)
            self._register_mixture(name, cfg)
        except Exception:
            for expert in missing:
                self.delete_adapter(expert)
            raise
        if set_active:
            self.set_active_adapters(self.get_adapter_mixture(name))
        return name

    def train_adapter_mixture(
        self, name: str, train_experts: bool = True, train_embeddings: bool = False
    ) -> None:
        """Freeze the backbone, activate mixture ``name`` and make its routers (and experts) trainable.

        Args:
            name (`str`): the mixture.
            train_experts (`bool`, *optional*, defaults to `True`): also train the LoRA experts; False trains the
                routers alone.
            train_embeddings (`bool`, *optional*, defaults to `False`): also train the input embeddings.
        """
        block = self.get_adapter_mixture(name)
        self.train_adapter(block, train_embeddings=train_embeddings)
        if not train_experts:
            for param in mixture_parameters(self, name, include_routers=False).values():
                param.requires_grad = False
        for param in self._get_mixture_routers(name).parameters():
            param.requires_grad = True

    def delete_adapter_mixture(self, name: str, delete_experts: bool = False) -> None:
        """Remove mixture ``name``'s routers (and, with ``delete_experts=True``, its experts)."""
        routers = self._get_mixture_routers(name)
        experts = list(routers.config.experts)
        active = self.active_adapters
        if active is not None and any(isinstance(b, Mixture) and b.name == name for b in [active, *active]):
            self.set_active_adapters(None)
        del self._mixture_store()[name]
        self.adapters_config.mixtures.pop(name, None)
        if delete_experts:
            for expert in experts:
                self.delete_adapter(expert)

    def save_adapter_mixture(
        self,
        save_directory: str | os.PathLike,
        name: str,
        with_head: bool | str = False,
        meta_dict: dict | None = None,
        use_safetensors: bool = False,
    ) -> None:
        """Save a mixture: each expert as a standard adapter folder, plus ``mixture_config.json`` and router weights.

        The directory is written atomically: a crash never leaves a half-written mixture behind.

        Args:
            save_directory (`str`): target directory (replaced if it exists).
            name (`str`): the mixture.
            with_head (`bool` or `str`, *optional*, defaults to `False`): also save a prediction head into ``head/``:
                the head named like the mixture, else the active head; a string names the head.
            meta_dict (`dict`, *optional*): extra entries for the config files.
            use_safetensors (`bool`, *optional*, defaults to `False`): write safetensors weights. The default matches
                adapters' own default, so that plain ``load_adapter(path)`` reads a saved expert.
        """
        routers = self._get_mixture_routers(name)
        head = self._resolve_head(name, with_head)
        with atomic_directory(save_directory) as tmp:
            for expert in routers.config.experts:
                kwargs = {"with_head": False} if hasattr(self, "heads") else {}
                self.save_adapter(
                    str(tmp / expert), expert, meta_dict=meta_dict, use_safetensors=use_safetensors, **kwargs
                )
            MixtureRouterLoader(self, use_safetensors=use_safetensors).save(
                str(tmp), name, meta_dict=meta_dict
            )
            if head is not None:
                self.save_head(str(tmp / "head"), head, use_safetensors=use_safetensors)

    def _resolve_head(self, name: str, with_head: bool | str) -> str | None:
        if not with_head:
            return None
        heads = getattr(self, "heads", None)
        if heads is None:
            raise ValueError("`with_head` needs a model with prediction heads (an AdapterModel).")
        if isinstance(with_head, str):
            head = with_head
        elif name in heads:
            head = name
        else:
            active = getattr(self, "active_head", None)
            head = active[0] if isinstance(active, list) else active
        if head not in heads:
            raise ValueError(f"No prediction head `{head}` to save; available heads: {sorted(heads)}.")
        return head

    def load_adapter_mixture(
        self,
        mixture_name_or_path: str | os.PathLike,
        load_as: str | None = None,
        set_active: bool = False,
        with_head: bool = True,
        revision: str | None = None,
        use_safetensors: bool = False,
        token: str | bool | None = None,
    ) -> str:
        """Load a mixture saved with :meth:`save_adapter_mixture`, from a directory or a Hugging Face Hub repo.

        Args:
            mixture_name_or_path (`str`): local directory, or Hub repo id (resolved from the local cache when offline).
            load_as (`str`, *optional*): name to give the mixture (its experts keep their names).
            set_active (`bool`, *optional*, defaults to `False`): activate it.
            with_head (`bool`, *optional*, defaults to `True`): also load a saved ``head/`` if the model has heads.
            revision (`str`, *optional*): Hub revision.
            use_safetensors (`bool`, *optional*, defaults to `False`): prefer safetensors weights.
            token (`str` or `bool`, *optional*): Hub token for the mixture repo and any per-expert repos (as
                for ``push_adapter_mixture_to_hub``; default: the logged-in one).

        Returns:
            `str`: the mixture's name.
        """
        path = resolve_mixture_path(mixture_name_or_path, revision=revision, token=token)
        loader = MixtureRouterLoader(self, use_safetensors=use_safetensors)
        saved = loader.read_config(path)
        config = MixtureConfig.from_dict(saved["config"])
        name = load_as or saved["name"]
        store = self._mixture_store()
        if store is not None and name in store:
            raise ValueError(f"A mixture named `{name}` already exists; delete it or pass `load_as`.")
        clash = [e for e in config.experts if e in self.adapters_config]
        if clash:
            raise ValueError(
                f"Experts {clash} already exist in the model; delete them before loading this mixture."
            )
        expert_dirs = resolve_expert_dirs(
            path, saved, config.experts, token=token
        )  # subfolders or pinned repos
        for expert in config.experts:
            self.load_adapter(str(expert_dirs[expert]), load_as=expert, use_safetensors=use_safetensors)
        self._register_mixture(name, config)
        loader.load_weights(path, name)
        if with_head and (path / "head").is_dir() and hasattr(self, "heads"):
            self.load_head(str(path / "head"), use_safetensors=use_safetensors)
        if set_active:
            self.set_active_adapters(self.get_adapter_mixture(name))
        return name

    def merge_adapter_mixture(
        self,
        name: str,
        language: str | None = None,
        *,
        weights: dict[str, float] | list[float] | None = None,
    ) -> None:
        """Fold a fixed routing into the base weights (zero overhead): all weight on one language's expert, or a
        weighted mix of experts.

        With ``language``, the model afterwards computes exactly what ``granularity="language"`` routing to
        ``language`` computes, with no adapter in the forward pass; undo with ``model.reset_adapter()`` and
        re-activate the mixture. With ``weights``, it computes what the experts compute under fixed gates ``w_i``
        (``W + sum_i w_i * scaling_i * B_i A_i``, adapters' ``Average(*experts, weights=...)``); that merge is not
        undone by ``reset_adapter`` (reload the model instead, or use :meth:`export_merged_adapter_mixture`, which
        merges a copy).

        Args:
            name (`str`): the mixture.
            language (`str`, *optional*): a language code of the mixture (see ``MixtureConfig.languages``) or an
                expert name.
            weights (`dict[str, float]` or `list[float]`, *optional*): per-expert weights, by expert name or
                language code, or a list in expert order (see :func:`~molora_adapters.mixture.merge.expert_mix`).
        """
        from .merge import expert_mix, merge_expert_mix

        if (language is None) == (weights is None):
            raise ValueError("Pass exactly one of `language` (one expert) or `weights` (a weighted mix).")
        config = self._get_mixture_routers(name).config
        self.set_active_adapters(None)  # also resets any merged LoRA
        if weights is not None:
            merge_expert_mix(self, expert_mix(config, weights))
            return
        self.merge_adapter(config.experts[config.expert_index(language)])

    def export_merged_adapter_mixture(
        self,
        save_directory: str | os.PathLike,
        name: str,
        *,
        weights: dict[str, float] | list[float] | None = None,
        language: str | None = None,
        head_name: str | None = None,
    ) -> Path:
        """``merge_and_unload``: save the backbone with a fixed mix of ``name``'s experts merged as a plain
        ``transformers`` model directory (no ``adapters`` needed to load it), the head beside it in ``head/``.

        The model itself is not changed. See :func:`~molora_adapters.mixture.merge.export_merged_model`.

        Args:
            save_directory (`str` or `os.PathLike`): the output directory (written atomically).
            name (`str`): the mixture.
            weights (`dict[str, float]` or `list[float]`, *optional*): per-expert weights (a fixed mix).
            language (`str`, *optional*): instead of ``weights``, all weight on this language's expert.
            head_name (`str`, *optional*): the head to save (default: the active head, if any).
        """
        from .merge import expert_mix, export_merged_model

        if (language is None) == (weights is None):
            raise ValueError("Pass exactly one of `language` (one expert) or `weights` (a weighted mix).")
        config = self._get_mixture_routers(name).config
        mix = expert_mix(config, weights if weights is not None else {language: 1.0})
        return export_merged_model(self, save_directory, mix, head_name=head_name)


def mixture_parameters(
    model: nn.Module, name: str, include_experts: bool = True, include_routers: bool = True
) -> dict[str, nn.Parameter]:
    """Parameters of mixture ``name``: its experts' LoRA weights and/or its routers, by qualified name.

    Args:
        model (`nn.Module`): an ``adapters`` model with the mixture.
        name (`str`): the mixture.
        include_experts (`bool`, *optional*, defaults to `True`): include ``.loras.<expert>.`` parameters.
        include_routers (`bool`, *optional*, defaults to `True`): include ``mixture_routers.<name>.`` parameters.
    """
    config = model._get_mixture_routers(name).config
    expert_markers = tuple(f".loras.{e}." for e in config.experts)
    router_marker = f"{ROUTERS_ATTR}.{name}."
    out = {}
    for pname, param in model.named_parameters():
        if (include_routers and router_marker in pname) or (
            include_experts and any(m in pname for m in expert_markers)
        ):
            out[pname] = param
    return out


def resolve_mixture_path(
    name_or_path: str | os.PathLike, revision: str | None = None, token: str | bool | None = None
) -> Path:
    """A local directory holding ``mixture_config.json``: the path itself, or a Hub snapshot of the repo id."""
    path = Path(name_or_path)
    if path.is_dir():
        if not (path / MIXTURE_CONFIG_NAME).is_file():
            raise FileNotFoundError(
                f"{path} has no {MIXTURE_CONFIG_NAME}; was it saved with save_adapter_mixture()?"
            )
        return path
    if path.exists() or str(name_or_path).count("/") > 1 or str(name_or_path).startswith((".", "/")):
        raise FileNotFoundError(f"Mixture directory {str(name_or_path)!r} does not exist.")
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(str(name_or_path), revision=revision, token=token)
    except Exception as err:  # offline with no cache, unknown repo, ...
        raise OSError(
            f"Could not find a local directory or a Hub repo {str(name_or_path)!r} ({type(err).__name__}: {err})."
        ) from err
    return resolve_mixture_path(local)
