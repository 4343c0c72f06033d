"""Saving and loading router weights: an ``adapters`` ``WeightsLoader`` for the ``mixture_routers.<name>.`` prefix.

Router weights are stored with keys relative to the mixture (``"{layer_key}.weight"``), so a mixture saved from a
model with heads loads into a bare model and vice versa.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from adapters.loading import WeightsLoader

from ..version import __version__
from .config import MixtureConfig
from .router import ROUTERS_ATTR

MIXTURE_CONFIG_NAME = "mixture_config.json"
MIXTURE_WEIGHTS_NAME = "pytorch_model_mixture.bin"
SAFE_MIXTURE_WEIGHTS_NAME = "model_mixture.safetensors"


class MixtureRouterLoader(WeightsLoader):
    """Saves/loads the routers and config of one mixture (its experts are saved as ordinary adapters).

    Usable wherever adapters accepts ``custom_weights_loaders``.

    Args:
        model: an ``adapters`` model.
        use_safetensors (`bool`, *optional*, defaults to `False`): write safetensors (reading falls back to torch).
            The default is that of ``save_adapter_mixture`` and of adapters' own loaders, so that a mixture saved
            either way has the same files.
    """

    def __init__(self, model, use_safetensors: bool = False):
        super().__init__(
            model,
            MIXTURE_WEIGHTS_NAME,
            MIXTURE_CONFIG_NAME,
            use_safetensors=use_safetensors,
            safe_weights_name=SAFE_MIXTURE_WEIGHTS_NAME,
        )
        self.use_safetensors = use_safetensors

    def filter_func(self, name: str):
        prefix = f"{ROUTERS_ATTR}.{name}."
        return lambda key: prefix in key

    def rename_func(self, old_name: str, new_name: str):
        return lambda key: key.replace(f"{ROUTERS_ATTR}.{old_name}.", f"{ROUTERS_ATTR}.{new_name}.")

    def save(self, save_directory: str, name: str, meta_dict: dict | None = None, **kwargs: Any) -> None:
        routers = self.model._get_mixture_routers(name)
        os.makedirs(save_directory, exist_ok=True)
        config = {
            "name": name,
            "config": routers.config.to_dict(),
            "model_type": self.model.config.model_type,
            "model_name": getattr(self.model, "model_name", None),
            "library": "molora_adapters",
            "version": __version__,
        }
        for k, v in (meta_dict or {}).items():
            config.setdefault(k, v)
        with open(os.path.join(save_directory, MIXTURE_CONFIG_NAME), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2, sort_keys=True)
        state = {k: v.detach().contiguous().cpu() for k, v in routers.state_dict().items()}
        if self.use_safetensors:
            from safetensors.torch import save_file

            save_file(
                state, os.path.join(save_directory, SAFE_MIXTURE_WEIGHTS_NAME), metadata={"format": "pt"}
            )
        else:
            torch.save(state, os.path.join(save_directory, MIXTURE_WEIGHTS_NAME))

    @staticmethod
    def read_config(path: str | os.PathLike) -> dict:
        """The saved ``mixture_config.json`` of a mixture directory, validated."""
        file = Path(path) / MIXTURE_CONFIG_NAME
        try:
            saved = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{file} not found; was this directory saved with save_adapter_mixture()?"
            ) from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{file} is not valid JSON ({err}); the save may be corrupted.") from None
        if not isinstance(saved, dict) or "name" not in saved or "config" not in saved:
            raise ValueError(f"{file} lacks the `name`/`config` entries of a saved mixture.")
        MixtureConfig.from_dict(saved["config"])  # validate early
        return saved

    def load_weights(self, path: str | os.PathLike, name: str) -> None:
        """Load router weights from ``path`` into the (already built) routers of mixture ``name``."""
        path = Path(path)
        safe, legacy = path / SAFE_MIXTURE_WEIGHTS_NAME, path / MIXTURE_WEIGHTS_NAME
        if safe.is_file():
            from safetensors.torch import load_file

            state = load_file(str(safe), device="cpu")
        elif legacy.is_file():
            state = torch.load(legacy, map_location="cpu", weights_only=True)
        else:
            raise FileNotFoundError(
                f"No router weights ({SAFE_MIXTURE_WEIGHTS_NAME} or {MIXTURE_WEIGHTS_NAME}) in {path}."
            )
        routers = self.model._get_mixture_routers(name)
        missing, unexpected = routers.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"Router weights in {path} do not fit this model's layers: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}. Was the mixture trained on another architecture?"
            )

    def load(self, save_directory: str, load_as: str | None = None, loading_info=None, **kwargs: Any):
        """``WeightsLoader`` entry point: build the routers of a saved mixture whose experts are loaded, then load."""
        saved = self.read_config(save_directory)
        name = load_as or saved["name"]
        if name not in (self.model.adapter_mixtures or {}):
            self.model._register_mixture(name, MixtureConfig.from_dict(saved["config"]))
        self.load_weights(save_directory, name)
        return save_directory, name
