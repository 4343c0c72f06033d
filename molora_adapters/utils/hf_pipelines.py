"""The shared part of this package's ``transformers`` pipelines: a ``transformers.Pipeline`` around one of our
pipelines, and idempotent registration with ``PIPELINE_REGISTRY``."""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import Pipeline

from .. import _plugin


class WrappedPipeline(Pipeline):
    """A ``transformers.Pipeline`` whose work is done by one of our pipelines, built by :meth:`build` into
    ``self.inner``; the keyword arguments named in ``OPTIONS`` go to it, the others to ``transformers.Pipeline``.
    Only text models: a tokenizer is loaded, no processor."""

    OPTIONS: ClassVar[tuple[str, ...]] = ()

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False

    def __init__(self, model, tokenizer=None, **kwargs: Any) -> None:
        options = {k: kwargs.pop(k) for k in self.OPTIONS if k in kwargs}
        super().__init__(model, tokenizer, **kwargs)
        self.inner = self.build(self.model, self.tokenizer, **options)

    def build(self, model, tokenizer, **options: Any):
        """Our pipeline for ``model`` and ``tokenizer``."""
        raise NotImplementedError


def register_task(task: str, pipeline_class: type, model_class: type) -> None:
    """Register ``task`` with ``transformers.pipelines.PIPELINE_REGISTRY`` (idempotent; a text task whose models
    ``model_class.from_pretrained`` loads)."""
    from transformers.pipelines import PIPELINE_REGISTRY

    if PIPELINE_REGISTRY.supported_tasks.get(task, {}).get("impl") is pipeline_class:
        return
    PIPELINE_REGISTRY.register_pipeline(
        task, pipeline_class=pipeline_class, pt_model=model_class, type="text"
    )


# Importing `Pipeline` above may have imported transformers' pipelines, and with them asked for registrations that
# need this module complete.
_plugin.run_deferred_pipelines()
