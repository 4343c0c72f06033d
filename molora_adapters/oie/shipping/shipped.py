"""The OIE model that ships with the package: its documented name and where its files live (no heavy imports).

``OIEPipeline.from_pretrained()`` with no argument, or with :data:`SHIPPED_MODEL_NAME`, and ``molora extract``
without ``--model`` load the packaged model in :data:`SHIPPED_MODEL_DIR` (package data, so wheels include it). A build
without it says so in one line (:class:`ShippedModelMissingError`) and names the alternative (``--model``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "SHIPPED_MODEL_DIR",
    "SHIPPED_MODEL_NAME",
    "ShippedModelMissingError",
    "is_shipped_name",
    "shipped_model_path",
]

SHIPPED_MODEL_NAME = "molora/oie-multilingual-e5-small"
"""The documented name of the shipped model: multilingual OIE on the embedded multilingual-e5-small."""

SHIPPED_MODEL_DIR = Path(__file__).resolve().parents[2] / "resources" / "models" / "oie-multilingual-e5-small"
"""Where the shipped model's files live inside the installed package (``molora package-model ... --ship``)."""

# = format.MANIFEST_NAME, repeated so that this module imports nothing heavy
_MANIFEST = "molora_package.json"


class ShippedModelMissingError(FileNotFoundError):
    """The shipped OIE model is not part of this build of the package."""


def is_shipped_name(name_or_path: object) -> bool:
    """Whether ``name_or_path`` asks for the shipped model (`None` or :data:`SHIPPED_MODEL_NAME`)."""
    return name_or_path is None or name_or_path == SHIPPED_MODEL_NAME


def shipped_model_path() -> Path:
    """The directory of the shipped model.

    Raises:
        ShippedModelMissingError: this build has no shipped model (one line, naming what to pass instead).
    """
    directory = SHIPPED_MODEL_DIR
    if not (directory / _MANIFEST).is_file():
        raise ShippedModelMissingError(
            f"The shipped OIE model `{SHIPPED_MODEL_NAME}` is not in this build of molora-adapters (no "
            f"{directory / _MANIFEST}); pass a trained model instead, e.g. `molora extract --model RUN_DIR/train` "
            "or `OIEPipeline.from_pretrained(path_or_hub_id)` (a `molora train` run, a saved model or a "
            "`molora package-model` directory)."
        )
    return directory
