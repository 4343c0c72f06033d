"""Model methods of the X-STA recipe: ``add_xsta`` / ``train_xsta`` / ``save_xsta`` / ``load_xsta`` /
``delete_xsta`` (attached to every ``adapters`` model by :mod:`molora_adapters._integration`, imported on first
call). The first X-STA setup of a process installs the GDKS dispatch in self-attention
(:func:`~molora_adapters.xsta.seam.install_attention_dispatch`).

One X-STA setup named ``name`` is an ``"xsta_qa"`` prediction head named ``name`` plus, unless GDKS is ablated, a
:class:`~molora_adapters.xsta.layer.KnowledgeSharing` module at ``model.base_model.xsta_gdks[name]``. Its config is
recorded in the model's adapters config, so ``save_pretrained`` / ``from_pretrained`` rebuild it; the head
persists like any ``adapters`` head.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..utils.io import atomic_directory
from ..version import __version__
from .config import SUPPORTED_MODEL_TYPES, XSTAConfig
from .layer import GDKS_ATTR, KnowledgeSharing
from .seam import active_xsta, install_attention_dispatch  # noqa: F401  (active_xsta: re-exported)

XSTA_CONFIG_NAME = "xsta_config.json"
XSTA_WEIGHTS_NAME = "model_xsta_gdks.safetensors"


def check_xsta_model(model: nn.Module, config: XSTAConfig) -> None:
    """Raise a clear error if ``model`` cannot host an X-STA setup with ``config`` (before any change)."""
    if not hasattr(model, "heads"):
        raise TypeError(
            f"X-STA needs a model with prediction heads, got {type(model).__name__}; load it with "
            "`adapters.AutoAdapterModel`."
        )
    model_type = getattr(model.config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"X-STA's knowledge sharing supports the BERT-family layers {list(SUPPORTED_MODEL_TYPES)}, got model "
            f"type `{model_type}`. Use a BERT, RoBERTa or XLM-R encoder."
        )
    n_layers = model.config.num_hidden_layers
    if not 0 <= config.layer < n_layers:
        raise ValueError(
            f"`layer` must be in [0, {n_layers - 1}] for this {n_layers}-layer model, got {config.layer}."
        )
    position = getattr(model.config, "position_embedding_type", "absolute")
    if position != "absolute":
        raise ValueError(
            f"X-STA's knowledge sharing needs absolute position embeddings, got `position_embedding_type`={position!r}."
        )


class XSTAModelMixin:
    """The X-STA model methods (see module docstring)."""

    # ---- internals ----------------------------------------------------------------------------------------------
    def _xsta_store(self, create: bool = False) -> nn.ModuleDict | None:
        store = getattr(self.base_model, GDKS_ATTR, None)
        if store is None and create:
            store = nn.ModuleDict()
            self.base_model.add_module(GDKS_ATTR, store)
        return store

    def _register_xsta(self, name: str, config: XSTAConfig) -> None:
        """Build the GDKS module of ``name`` (unless ablated) and record its config (no head)."""
        install_attention_dispatch()
        if config.use_gdks:
            param = next(self.base_model.parameters())
            self._xsta_store(create=True)[name] = KnowledgeSharing(
                self.config.hidden_size,
                config,
                device=param.device,
                dtype=param.dtype,
                init_std=getattr(self.config, "initializer_range", 0.02),
            )
        self.adapters_config.xsta[name] = config.to_dict()

    def _get_xsta_config(self, name: str) -> XSTAConfig:
        saved = self.adapters_config.xsta.get(name)
        if saved is None:
            raise ValueError(f"No X-STA setup named `{name}`; known: {sorted(self.adapters_config.xsta)}.")
        return XSTAConfig.from_dict(saved)

    # ---- public API ---------------------------------------------------------------------------------------------
    def add_xsta(
        self,
        name: str,
        config: XSTAConfig | dict | None = None,
        overwrite_ok: bool = False,
        set_active: bool = True,
        **config_kwargs: Any,
    ) -> str:
        """Add an X-STA setup: a GDKS module at ``config.layer`` and an ``"xsta_qa"`` head named ``name``.

        Everything is validated before the model changes: a non-BERT-family model, a layer out of range or a
        duplicate name raise.

        Args:
            name (`str`): name of the setup and of its head.
            config (`XSTAConfig` or `dict`, *optional*): the setup's configuration.
            overwrite_ok (`bool`, *optional*, defaults to `False`): replace an existing setup of that name.
            set_active (`bool`, *optional*, defaults to `True`): make the head the active head.
            **config_kwargs: further :class:`XSTAConfig` fields (override ``config``).

        Returns:
            `str`: the name.
        """
        base = config.to_dict() if isinstance(config, XSTAConfig) else dict(config or {})
        base.update(config_kwargs)
        cfg = XSTAConfig.from_dict(base)
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"X-STA `name` must be a non-empty string without '.', got {name!r}.")
        check_xsta_model(self, cfg)
        if name in self.adapters_config.xsta or name in self.heads:
            if not overwrite_ok:
                raise ValueError(f"An X-STA setup or head named `{name}` exists; pass `overwrite_ok=True`.")
            self.delete_xsta(name) if name in self.adapters_config.xsta else self.delete_head(name)
        from .head import XSTA_HEAD_TYPE, register_xsta_head

        register_xsta_head(self)
        self._register_xsta(name, cfg)
        self.add_custom_head(
            XSTA_HEAD_TYPE, name, overwrite_ok=overwrite_ok, set_active=set_active, **cfg.to_dict()
        )
        return name

    def train_xsta(self, name: str, adapter_setup=None, train_embeddings: bool | None = None) -> None:
        """Put the model in training mode for X-STA ``name``: its GDKS module and head train, plus either the whole
        encoder (the paper's full fine-tuning, embeddings included; ``XSTATrainer`` updates the word embeddings
        row-sparsely) or, with ``adapter_setup``, only those adapters (``train_adapter`` freezes the backbone).

        Args:
            name (`str`): the setup.
            adapter_setup (*optional*): adapters to train instead of the encoder (a name, a LoRA, a ``Mixture``...).
            train_embeddings (`bool`, *optional*): train the input embeddings; defaults to `True` for full
                fine-tuning and to `False` with ``adapter_setup``.
        """
        self._get_xsta_config(name)
        if adapter_setup is not None:
            self.train_adapter(adapter_setup, train_embeddings=bool(train_embeddings))
        else:
            self.train()
            for pname, param in self.base_model.named_parameters():
                param.requires_grad = train_embeddings is not False or ".embeddings." not in f".{pname}"
        self.active_head = name
        for param in self.heads[name].parameters():
            param.requires_grad = True
        store = self._xsta_store()
        if store is not None and name in store:
            for param in store[name].parameters():
                param.requires_grad = True

    def delete_xsta(self, name: str) -> None:
        """Remove X-STA setup ``name``: its GDKS module, its recorded config and its head."""
        self._get_xsta_config(name)
        store = self._xsta_store()
        if store is not None and name in store:
            del store[name]
        self.adapters_config.xsta.pop(name, None)
        if name in self.heads:
            self.delete_head(name)

    def save_xsta(self, save_directory: str | os.PathLike, name: str) -> None:
        """Save X-STA setup ``name`` (config, GDKS weights, head) to a directory, atomically.

        Args:
            save_directory (`str`): target directory (replaced if it exists).
            name (`str`): the setup.
        """
        from safetensors.torch import save_file

        config = self._get_xsta_config(name)
        with atomic_directory(save_directory) as tmp:
            meta = {
                "name": name,
                "config": config.to_dict(),
                "model_type": self.config.model_type,
                "hidden_size": self.config.hidden_size,
                "library": "molora_adapters",
                "version": __version__,
            }
            (tmp / XSTA_CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
            store = self._xsta_store()
            if store is not None and name in store:
                state = {k: v.detach().contiguous().cpu() for k, v in store[name].state_dict().items()}
                save_file(state, str(tmp / XSTA_WEIGHTS_NAME), metadata={"format": "pt"})
            self.save_head(str(tmp / "head"), name)

    def load_xsta(self, path: str | os.PathLike, load_as: str | None = None, set_active: bool = True) -> str:
        """Load an X-STA setup saved with :meth:`save_xsta`.

        Args:
            path (`str`): the saved directory.
            load_as (`str`, *optional*): name to give the setup (defaults to the saved name).
            set_active (`bool`, *optional*, defaults to `True`): make its head the active head.

        Returns:
            `str`: the name.
        """
        path = Path(path)
        file = path / XSTA_CONFIG_NAME
        if not file.is_file():
            raise FileNotFoundError(f"{file} not found; was this directory saved with `save_xsta()`?")
        saved = json.loads(file.read_text(encoding="utf-8"))
        config = XSTAConfig.from_dict(saved["config"])
        name = load_as or saved["name"]
        if name in self.adapters_config.xsta or name in self.heads:
            raise ValueError(f"An X-STA setup or head named `{name}` exists; delete it or pass `load_as`.")
        if saved.get("hidden_size") not in (None, self.config.hidden_size):
            raise ValueError(
                f"The X-STA setup in {path} was trained with hidden size {saved['hidden_size']}, this model has "
                f"{self.config.hidden_size}."
            )
        check_xsta_model(self, config)
        from .head import register_xsta_head

        register_xsta_head(self)
        self._register_xsta(name, config)
        try:
            if config.use_gdks:
                from safetensors.torch import load_file

                state = load_file(str(path / XSTA_WEIGHTS_NAME), device="cpu")
                self._xsta_store()[name].load_state_dict(state)
            self.load_head(str(path / "head"), load_as=name)
        except Exception:
            self.delete_xsta(name) if name in self.adapters_config.xsta else None
            raise
        if set_active:
            self.active_head = name
        return name


def xsta_parameters(model: nn.Module, name: str) -> dict[str, torch.nn.Parameter]:
    """The X-STA-specific parameters of setup ``name`` (GDKS module and head), by qualified name."""
    markers = (f"{GDKS_ATTR}.{name}.", f"heads.{name}.")
    return {n: p for n, p in model.named_parameters() if any(m in n for m in markers)}
