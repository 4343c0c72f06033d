"""LLM backends: OpenAI-compatible HTTP and local transformers models, behind one small interface."""

from . import openai_http as _openai_http  # noqa: F401  (registers "openai")
from . import transformers_local as _transformers_local  # noqa: F401  (registers "transformers")
from .base import (
    LLM_BACKENDS,
    BackendError,
    ChatBackend,
    ChatResponse,
    FatalBackendError,
    build_backend,
    register_llm_backend,
)
from .openai_http import OpenAIHTTPBackend, OpenAIHTTPConfig
from .transformers_local import TransformersLocalBackend, TransformersLocalConfig, smollm2_gguf_path

__all__ = [
    "BackendError",
    "ChatBackend",
    "ChatResponse",
    "FatalBackendError",
    "LLM_BACKENDS",
    "OpenAIHTTPBackend",
    "OpenAIHTTPConfig",
    "TransformersLocalBackend",
    "TransformersLocalConfig",
    "build_backend",
    "register_llm_backend",
    "smollm2_gguf_path",
]
