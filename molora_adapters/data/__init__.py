"""Data: the shared OIE schema, corpus loaders and LLM-generated corpora.

Every loader is registered by import path (:mod:`.registry`): a loader's module, :mod:`molora_adapters.data.llm`
(backends, HTTP client, answer cache) and :mod:`molora_adapters.data.projection` (aligner, pairing) are imported
only when it is used, or when imported directly. The schema (and with it ``datasets``, pandas and pyarrow) loads on
first access to one of its names, so that inference, which imports :mod:`.alignment` and :mod:`.tokenization`, does
not pay for it.
"""

from ..utils.lazy import lazy_exports
from .registry import CORPUS_LOADERS, load_training_corpus, register_corpus_loader

_LAZY = {
    "OIERecord": ".schema",
    "OIETuple": ".schema",
    "OIE_FEATURES": ".schema",
    "records_to_dataset": ".schema",
}

__all__ = [
    "CORPUS_LOADERS",
    "OIERecord",
    "OIETuple",
    "OIE_FEATURES",
    "load_training_corpus",
    "records_to_dataset",
    "register_corpus_loader",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
