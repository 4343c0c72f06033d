"""Registry of training-corpus loaders.

A loader is a callable ``(path: str | None = None, **kwargs) -> datasets.Dataset`` returning
records in :data:`molora_adapters.data.schema.OIE_FEATURES`. Users add their own with
:func:`register_corpus_loader`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..registry import Registry

if TYPE_CHECKING:  # `datasets` (with pandas and pyarrow) is imported by the loaders, not by listing them
    import datasets

CorpusLoader = Callable[..., "datasets.Dataset"]

CORPUS_LOADERS: Registry[CorpusLoader] = Registry("corpus loader")

# Built-in loaders, by import path: their modules (and `datasets`) are imported on the first lookup, so that
# importing `molora_adapters.data` (inference: alignment, tokenisation) stays light. Each module registers its loader
# on import, which the lazy entry accepts.
for _name, _path in (
    ("jsonl", "molora_adapters.data.corpora.jsonl:load_jsonl"),
    ("lsoie", "molora_adapters.data.corpora.lsoie:load_lsoie"),
    ("oie2016", "molora_adapters.data.corpora.oie2016:load_oie2016"),
    ("openie4", "molora_adapters.data.corpora.openie4:load_openie4"),
    ("imojie", "molora_adapters.data.corpora.t5:load_imojie"),
    ("lsoie-gpt", "molora_adapters.data.corpora.t5:load_lsoie_gpt"),
    ("llm-augmented", "molora_adapters.data.llm.loader:load_llm_augmented"),
    ("openie4pp", "molora_adapters.data.llm.loader:load_openie4pp"),
    ("projected", "molora_adapters.data.projection:load_projected"),
):
    CORPUS_LOADERS.register_lazy(_name, _path)
del _name, _path


def register_corpus_loader(name: str, loader: CorpusLoader | None = None, *, overwrite: bool = False):
    """Register a training-corpus loader under ``name`` (usable as a decorator).

    Args:
        name (`str`): lower-case name used with :func:`load_training_corpus`.
        loader (`Callable`, *optional*): the loader; omit to use as ``@register_corpus_loader("x")``.
        overwrite (`bool`, *optional*, defaults to `False`): replace an existing loader of that name.
    """
    return CORPUS_LOADERS.register(name, loader, overwrite=overwrite)


def load_training_corpus(name: str, path: str | None = None, **kwargs) -> datasets.Dataset:
    """Load the corpus registered as ``name`` into the shared OIE schema.

    Args:
        name (`str`): a registered loader name (see ``CORPUS_LOADERS.names()``).
        path (`str`, *optional*): file or directory to read; loaders of vendored corpora default to the
            copy shipped in the package.
        **kwargs: passed to the loader.
    """
    return CORPUS_LOADERS.get(name)(path=path, **kwargs)
