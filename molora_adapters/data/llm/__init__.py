"""LLM-generated multilingual training data (MT4CrossOIE's OpenIE4++): translate, then annotate.

Importing this package registers the ``openai`` and ``transformers`` LLM backends and the built-in prompt
templates. Its ``llm-augmented`` and ``openie4pp`` corpus loaders are registered by :mod:`molora_adapters.data`
by import path, so that loading other corpora never imports this package.
"""

from .backends import (
    LLM_BACKENDS,
    BackendError,
    ChatBackend,
    ChatResponse,
    FatalBackendError,
    OpenAIHTTPBackend,
    OpenAIHTTPConfig,
    TransformersLocalBackend,
    TransformersLocalConfig,
    build_backend,
    register_llm_backend,
)
from .cache import AnswerCache
from .languages import LANGUAGES, check_language
from .loader import build_openie4pp, load_llm_augmented
from .parsing import ParsedTriple, ParseError, parse_translation, parse_triples
from .pipeline import AnnotateConfig, AnnotateReport, annotate
from .prompts import MT4CROSSOIE, MT4CROSSOIE_COT, PROMPTS, PromptTemplate, load_prompt, register_prompt
from .source import load_source
from .validation import RejectReason, ValidationError, align_triples, check_translation, tokenize

__all__ = [
    "AnnotateConfig",
    "AnnotateReport",
    "AnswerCache",
    "BackendError",
    "ChatBackend",
    "ChatResponse",
    "FatalBackendError",
    "LANGUAGES",
    "LLM_BACKENDS",
    "MT4CROSSOIE",
    "MT4CROSSOIE_COT",
    "OpenAIHTTPBackend",
    "OpenAIHTTPConfig",
    "PROMPTS",
    "ParseError",
    "ParsedTriple",
    "PromptTemplate",
    "RejectReason",
    "TransformersLocalBackend",
    "TransformersLocalConfig",
    "ValidationError",
    "align_triples",
    "annotate",
    "build_backend",
    "build_openie4pp",
    "check_language",
    "check_translation",
    "load_llm_augmented",
    "load_prompt",
    "load_source",
    "parse_translation",
    "parse_triples",
    "register_llm_backend",
    "register_prompt",
    "tokenize",
]
