"""Registry of training-corpus loaders.

A loader is a callable ``(path: str | None = None, **kwargs) -> datasets.Dataset`` returning
records in :data:`molora_adapters.data.schema.OIE_FEATURES`. Users add their own with
:func:`register_corpus_loader`.
"""

from __future__ import annotations

from collections.abc import Callable

import datasets

from ..registry import Registry

CorpusLoader = Callable[..., datasets.Dataset]

CORPUS_LOADERS: Registry[CorpusLoader] = Registry("corpus loader")


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
