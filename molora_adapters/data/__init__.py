"""Data: the shared OIE schema, corpus loaders and LLM-generated corpora.

The ``llm-augmented``, ``openie4pp`` and ``projected`` loaders are registered by import path:
:mod:`molora_adapters.data.llm` (backends, HTTP client, answer cache) and :mod:`molora_adapters.data.projection`
(aligner, pairing) are imported only when one of them is used, or when imported directly.
"""

from . import corpora as _corpora  # noqa: F401  (registers the built-in loaders)
from .registry import CORPUS_LOADERS, load_training_corpus, register_corpus_loader
from .schema import OIE_FEATURES, OIERecord, OIETuple, records_to_dataset

CORPUS_LOADERS.register_lazy("llm-augmented", "molora_adapters.data.llm.loader:load_llm_augmented")
CORPUS_LOADERS.register_lazy("openie4pp", "molora_adapters.data.llm.loader:load_openie4pp")
CORPUS_LOADERS.register_lazy("projected", "molora_adapters.data.projection:load_projected")

__all__ = [
    "CORPUS_LOADERS",
    "OIERecord",
    "OIETuple",
    "OIE_FEATURES",
    "load_training_corpus",
    "records_to_dataset",
    "register_corpus_loader",
]
