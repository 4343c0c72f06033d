"""A trained OIE model as compact package data: only what differs from the base encoder, hashed, loadable by name.

- :mod:`.format`: the directory layout, the fp32 / fp16 / int8 tensor codecs and the integrity checks;
- :mod:`.build`: :func:`package_model` (``molora package-model``) from a trained run;
- :mod:`.load`: :func:`load_packaged_model`, used by ``OIEPipeline.from_pretrained``;
- :mod:`.card`: the model card written beside it;
- :mod:`.hub`: :func:`push_packaged_model_to_hub`;
- :mod:`.shipped`: the shipped model's name (:data:`SHIPPED_MODEL_NAME`) and directory.

Public names load their module on first access.
"""

from ...utils.lazy import lazy_exports

_LAZY = {
    "DTYPES": ".format",
    "MANIFEST_NAME": ".format",
    "PackageIntegrityError": ".format",
    "SHIPPED_MODEL_DIR": ".shipped",
    "SHIPPED_MODEL_NAME": ".shipped",
    "ShippedModelMissingError": ".shipped",
    "find_packaged_model": ".load",
    "is_packaged_model": ".format",
    "load_packaged_model": ".load",
    "load_packaged_tokenizer": ".load",
    "model_card": ".card",
    "package_model": ".build",
    "push_packaged_model_to_hub": ".hub",
    "shipped_model_path": ".shipped",
}

__all__ = [
    "DTYPES",
    "MANIFEST_NAME",
    "PackageIntegrityError",
    "SHIPPED_MODEL_DIR",
    "SHIPPED_MODEL_NAME",
    "ShippedModelMissingError",
    "find_packaged_model",
    "is_packaged_model",
    "load_packaged_model",
    "load_packaged_tokenizer",
    "model_card",
    "package_model",
    "push_packaged_model_to_hub",
    "shipped_model_path",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
