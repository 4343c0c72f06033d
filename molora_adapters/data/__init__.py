"""Data: the shared OIE schema, corpus loaders and LLM-generated corpora."""

from . import corpora as _corpora  # noqa: F401  (registers the built-in loaders)
from . import llm as _llm  # noqa: F401  (registers the llm-augmented loader)
from . import projection as _projection  # noqa: F401  (registers the projected loader)
from .registry import CORPUS_LOADERS, load_training_corpus, register_corpus_loader
from .schema import OIE_FEATURES, OIERecord, OIETuple, records_to_dataset

__all__ = [
    "CORPUS_LOADERS",
    "OIERecord",
    "OIETuple",
    "OIE_FEATURES",
    "load_training_corpus",
    "records_to_dataset",
    "register_corpus_loader",
]
