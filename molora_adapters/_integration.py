"""The one seam between molora_adapters and ``adapters`` internals.

``adapters`` 1.3 has no registry for composition blocks, so registering ``Mixture`` means touching its internals.
Every touch is listed in one table here and applied by one rule (:mod:`molora_adapters._patching`): a wrapped
original must exist (``ImportError`` otherwise, so a renamed target fails loudly instead of being skipped), every
added method goes through a clash check, everything is idempotent and guarded by the supported ``adapters`` range.

1. composition table: ``Mixture`` is findable by ``AdapterCompositionBlock.from_dict`` and listed in
   ``ALLOWED_NESTINGS`` (alone, or inside ``Stack`` / ``Parallel`` / ``BatchSplit``);
2. per-layer dispatch: ``_init_mapping`` maps ``Mixture`` to ``compose_mixture``, implemented for ``LoRALinear``
   and a no-op for other adapter layers; ``LoRALinear.forward`` sends a top-level ``Mixture`` to
   :func:`~molora_adapters.mixture.layer.mixture_linear_output`, which fuses the residual add into the experts' B
   matmul (every other setup runs adapters' forward unchanged);
3. config sections (:data:`CONFIG_SECTIONS`): ``ModelAdaptersConfig`` carries ``mixtures`` and ``xsta`` entries
   through ``to_dict`` / ``__init__``, and ``init_adapters`` rebuilds them, so ``save_pretrained`` /
   ``from_pretrained`` bring routers and X-STA modules back;
4. forward context: ``output_router_logits``, ``language_ids`` and ``xsta_paired`` become context arguments, and
   outputs gain ``router_logits`` and ``mixture_aux_loss``; a context argument may name a hook
   (:data:`CONTEXT_HOOKS`, by import path: X-STA's paired forward); ``LoRALinear``'s ``BatchSplit`` / ``Parallel``
   record which batch rows each slice covers (``context.mixture_rows``), so a mixture slices the mask and the
   language ids alike;
5. lifecycle: deleting an adapter that a mixture uses is rejected;
6. prediction heads: :func:`register_head_type`, through which sub-packages declare custom head types *by import
   path*. A head class is imported only when a model actually adds a head of that type, so building a flex-head
   model never imports the OIE, data or LLM stacks;
7. model methods (:data:`MODEL_METHODS`): :class:`~molora_adapters.mixture.model.MixtureModelMixin`,
   :class:`~molora_adapters.mixture.hub.MixtureHubMixin` and the X-STA methods (resolved by path on first call);
8. adapters bug workarounds: :func:`relink_prefix_pools`;
9. attention under CPU bf16 autocast: the SDPA self-attention classes of BERT / RoBERTa / XLM-R
   (:data:`SDPA_ATTENTION_CLASSES`) compute the attention product in float32
   (:class:`~molora_adapters.utils.attention.Float32Attention`), the q/k/v linears staying in bf16.

The X-STA part that patches self-attention lives in :mod:`molora_adapters.xsta.seam` under the same rule, and is
installed only when a model gets an X-STA setup. Nothing else in the package modifies third-party objects.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from adapters import composition
from adapters.composition import ALLOWED_NESTINGS, BatchSplit, Parallel, Stack
from adapters.configuration.model_adapters_config import ModelAdaptersConfig
from adapters.context import ForwardContext
from adapters.heads.model_mixin import ModelWithFlexibleHeadsAdaptersMixin
from adapters.methods.adapter_layer_base import ComposableAdapterLayerBase
from adapters.methods.lora import LoRALinear
from adapters.model_mixin import ModelAdaptersMixin
from transformers.utils import ModelOutput

from ._patching import (
    MARK,
    SUPPORTED_ADAPTERS_RANGE,
    add_method,
    check_adapters_version,
    copy_methods,
    patch,
    resolve,
)
from ._plugin import when_imported
from .mixture.composition import Mixture
from .mixture.config import MixtureConfig
from .mixture.hub import MixtureHubMixin
from .mixture.layer import compose_mixture_lora, compose_mixture_unsupported, mixture_linear_output
from .mixture.model import MixtureModelMixin
from .mixture.router import ROUTERS_ATTR
from .utils.attention import Float32Attention, float32_attention_active

_registered = False

# kept under their historical names (tests, plugins)
_patch = patch
_copy_methods = copy_methods
_resolve = resolve
__all__ = [
    "CONFIG_SECTIONS",
    "CONTEXT_ARGS",
    "CONTEXT_HOOKS",
    "HEAD_TYPES",
    "MODEL_METHODS",
    "PATCHES",
    "SDPA_ATTENTION_CLASSES",
    "SUPPORTED_ADAPTERS_RANGE",
    "check_adapters_version",
    "ensure_layer_dispatch",
    "register",
    "register_head_type",
    "relink_prefix_pools",
    "unregister_head_type",
    "with_router_outputs",
]


# ---- 2. per-layer dispatch -----------------------------------------------------------------------------------------
def _make_init_mapping(original):
    @functools.wraps(original)
    def _init_mapping(self):
        original(self)
        self.composition_to_func_map[Mixture] = "compose_mixture"

    return _init_mapping


def _make_lora_linear_forward(original):
    @functools.wraps(original)
    def forward(self, input_states: torch.Tensor):
        if not self.merged and not self.fan_in_fan_out:
            adapter_setup = self.get_active_setup()
            if isinstance(adapter_setup, Mixture):
                # the frozen linear exactly as adapters computes it (Linear, Linear4bit, ... by the MRO)
                layer_output = super(LoRALinear, self).forward(input_states)
                return mixture_linear_output(self, adapter_setup, input_states, layer_output)
        return original(self, input_states)

    return forward


def ensure_layer_dispatch(model: torch.nn.Module) -> None:
    """Add the ``Mixture`` entry to layers built before the plugin was imported.

    Attached to every ``adapters`` model as ``_ensure_mixture_dispatch``, so the mixture API calls it without
    importing this module (no ``mixture`` -> seam back edge).
    """
    for module in model.modules():
        if isinstance(module, ComposableAdapterLayerBase):
            module.composition_to_func_map.setdefault(Mixture, "compose_mixture")


# ---- 3. config sections --------------------------------------------------------------------------------------------
def _restore_mixture(model, name: str, saved: dict) -> None:
    store = getattr(model.base_model, ROUTERS_ATTR, None)
    if store is None or name not in store:
        model._register_mixture(name, MixtureConfig.from_dict(saved))


CONFIG_SECTIONS: dict[str, Callable[..., None] | str] = {
    "mixtures": _restore_mixture,
    "xsta": "molora_adapters.xsta.seam:restore_xsta",
}
"""Sections persisted in the adapters config: key -> ``restore(model, name, saved_dict)``, called by
``init_adapters`` for every saved entry (a ``"module:function"`` path is imported only when an entry exists).
Each section is a ``name -> dict`` mapping, read and written as ``model.adapters_config.<key>``."""


def _section_property(key: str) -> property:
    def section(self) -> dict:
        return self.__dict__.setdefault(f"_molora_{key}", {})

    section.__name__ = key
    section.__doc__ = f"Name -> config dict of the model's `{key}` (persisted with the adapters config)."
    return property(section)


def _make_config_init(original):
    @functools.wraps(original)
    def __init__(self, **kwargs):
        saved = {key: kwargs.pop(key, None) or {} for key in CONFIG_SECTIONS}
        original(self, **kwargs)
        for key, entries in saved.items():
            self.__dict__[f"_molora_{key}"] = {k: dict(v) for k, v in entries.items()}

    return __init__


def _make_config_to_dict(original):
    @functools.wraps(original)
    def to_dict(self):
        out = original(self)
        for key in CONFIG_SECTIONS:
            out[key] = {k: dict(v) for k, v in getattr(self, key).items()}
        return out

    return to_dict


def _make_init_adapters(original):
    @functools.wraps(original)
    def init_adapters(self, model_config, adapters_config):
        original(self, model_config, adapters_config)
        for key, restore in CONFIG_SECTIONS.items():
            saved = getattr(self.adapters_config, key)
            if saved:
                fn = resolve(restore) if isinstance(restore, str) else restore
                for name, cfg in list(saved.items()):
                    fn(self, name, cfg)

    return init_adapters


# ---- 4. forward context --------------------------------------------------------------------------------------------
CONTEXT_ARGS = ("output_router_logits", "language_ids", "xsta_paired")
"""Forward arguments that ``adapters`` moves into the ``ForwardContext``."""

CONTEXT_HOOKS: dict[str, str] = {"xsta_paired": "molora_adapters.xsta.seam:paired_forward_context"}
"""Context argument -> ``"module:function"`` ``hook(model, context, args, kwargs)``, run once the context is set up
when the argument is truthy (imported then)."""


def _make_forward_context(original):
    @functools.wraps(original)
    def forward_context(self, context, *args, **kwargs):
        context.mixture_routers = getattr(self.base_model, ROUTERS_ATTR, None)
        context.router_logits = {}
        context.mixture_aux_losses = []
        context.mixture_language_index = {}
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1 and isinstance(args[1], torch.Tensor):
            mask = args[1]
        context.mixture_attention_mask = mask
        result = original(self, context, *args, **kwargs)
        for arg, hook in CONTEXT_HOOKS.items():
            if getattr(context, arg, None):
                resolve(hook)(self, context, args, kwargs)
        return result

    return forward_context


def _make_call_forward(original):
    @functools.wraps(original)
    def _call_forward(self, model, f, *args, **kwargs):
        results = original(self, model, f, *args, **kwargs)
        if getattr(self, "output_router_logits", False):
            losses = getattr(self, "mixture_aux_losses", [])
            if losses:  # mean over routed layers: coefficients do not scale with depth
                aux = torch.stack(losses).mean()
            else:
                aux = torch.zeros((), device=next(model.parameters()).device)
            logits = dict(getattr(self, "router_logits", {}))
            if isinstance(results, tuple):
                results = results + (logits, aux)
            elif isinstance(results, ModelOutput):
                results = with_router_outputs(type(results))(
                    **results, router_logits=logits, mixture_aux_loss=aux
                )
            else:
                results["router_logits"] = logits
                results["mixture_aux_loss"] = aux
        return results

    return _call_forward


@functools.cache
def with_router_outputs(output_cls: type) -> type:
    """``output_cls`` extended by two declared fields, ``router_logits`` and ``mixture_aux_loss``.

    Declared fields (rather than extra keys) keep the output rebuildable from its dataclass fields, which DDP does.
    """
    if {"router_logits", "mixture_aux_loss"} <= {f.name for f in dataclasses.fields(output_cls)}:
        return output_cls
    return dataclasses.make_dataclass(
        f"{output_cls.__name__}WithRouterLogits",
        [("router_logits", dict | None, None), ("mixture_aux_loss", torch.Tensor | None, None)],
        bases=(output_cls,),
        namespace={"__module__": __name__},
    )


# ---- 4b. slices of BatchSplit / Parallel ----------------------------------------------------------------------------
# A mixture inside BatchSplit / Parallel sees a slice (Parallel: of a replicated copy) of the batch, while the
# attention mask and the language ids in the forward context cover the whole batch. LoRA layers record which rows of
# the batch they received as ``context.mixture_rows`` (a tuple of row positions), so the mixture can slice both.
def _row_entries(context) -> list:
    return context.__dict__.setdefault("mixture_row_entries", [])


def _make_row_tracking_block(original):
    @functools.wraps(original)
    def compose_block(self, adapter_setup, state, lvl: int = 0):
        context = ForwardContext.get_context()
        if context is None:
            return original(self, adapter_setup, state, lvl)
        entry = getattr(context, "mixture_rows", None)
        entries = _row_entries(context)
        entries.append(entry if entry is not None else tuple(range(self._bsz(state))))
        try:
            return original(self, adapter_setup, state, lvl)
        finally:
            entries.pop()
            context.mixture_rows = entry

    return compose_block


def _make_row_tracking_vslice(original):
    @functools.wraps(original)
    def vslice(self, state, slice_obj):
        context = ForwardContext.get_context()
        entries = _row_entries(context) if context is not None else None
        if entries:
            context.mixture_rows = entries[-1][slice_obj]
        return original(self, state, slice_obj)

    return vslice


def _make_row_tracking_repeat(original):
    @functools.wraps(original)
    def repeat(self, state, channels: int):
        context = ForwardContext.get_context()
        entries = _row_entries(context) if context is not None else None
        if entries:  # copy c of row x sits at x + c * span: the copies keep distinct positions (and keys)
            rows = entries[-1]
            span = max(rows) + 1
            entries[-1] = tuple(x + c * span for c in range(channels) for x in rows)
        return original(self, state, channels)

    return repeat


# ---- 5. lifecycle --------------------------------------------------------------------------------------------------
def _make_delete_adapter(original):
    @functools.wraps(original)
    def delete_adapter(self, adapter_name: str):
        users = [
            n for n, cfg in self.adapters_config.mixtures.items() if adapter_name in cfg.get("experts", [])
        ]
        if users:
            raise ValueError(
                f"Adapter `{adapter_name}` is an expert of mixture(s) {users}; delete them first with "
                "`model.delete_adapter_mixture(name)` (or `delete_experts=True` to remove the experts too)."
            )
        return original(self, adapter_name)

    return delete_adapter


# ---- 6. prediction heads ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _HeadType:
    head_class: str  # "module:attribute", imported on first use
    adder: str | None  # "module:attribute" of an `add_*_head(model, name, **kwargs)` function
    adder_name: str | None  # model method name for it, e.g. "add_oie_head"


HEAD_TYPES: dict[str, _HeadType] = {}
"""Custom head types declared with :func:`register_head_type` (head type -> import paths)."""


def register_head_type(head_type: str, head_class: str, *, adder: str | None = None) -> None:
    """Declare a custom prediction-head type that every flex-head model knows, without importing it now.

    Args:
        head_type (`str`): the ``head_type`` saved in head configs (e.g. ``"oie"``).
        head_class (`str`): ``"package.module:ClassName"`` of the ``PredictionHead`` subclass.
        adder (`str`, *optional*): ``"package.module:function"`` of an ``add_<type>_head(model, name, **kw)``
            function, attached to flex-head models as ``model.add_<type>_head``.

    Raises:
        ValueError: ``head_type`` is already declared with other paths, or clashes with an ``adapters`` head.
    """
    from adapters.heads.model_mixin import MODEL_HEAD_MAP

    if not head_type.isidentifier():
        raise ValueError(
            f"`head_type` must be a Python identifier (it names `model.add_<type>_head`), got {head_type!r}."
        )
    entry = _HeadType(head_class, adder, f"add_{head_type}_head" if adder else None)
    if head_type in MODEL_HEAD_MAP:
        raise ValueError(f"`head_type` {head_type!r} is a built-in adapters head type; choose another name.")
    if HEAD_TYPES.get(head_type, entry) != entry:
        raise ValueError(
            f"Head type `{head_type}` is already declared as {HEAD_TYPES[head_type]}; `unregister_head_type` it first."
        )
    HEAD_TYPES[head_type] = entry
    if entry.adder_name and _registered:
        _install_head_adder(entry)


def unregister_head_type(head_type: str) -> None:
    """Remove a head type declared with :func:`register_head_type` (and its ``model.add_<type>_head``)."""
    entry = HEAD_TYPES.pop(head_type)
    if entry.adder_name and getattr(
        ModelWithFlexibleHeadsAdaptersMixin.__dict__.get(entry.adder_name), MARK, False
    ):
        delattr(ModelWithFlexibleHeadsAdaptersMixin, entry.adder_name)


def _install_head_adder(entry: _HeadType) -> None:
    def add_head(self, head_name: str, **kwargs):
        return resolve(entry.adder)(self, head_name, **kwargs)

    add_head.__name__ = add_head.__qualname__ = entry.adder_name
    add_head.__doc__ = f"Add a head with ``{entry.adder}`` (imported on first use)."
    add_method(ModelWithFlexibleHeadsAdaptersMixin, entry.adder_name, add_head, source=entry.adder)


def _make_add_prediction_head_from_config(original):
    @functools.wraps(original)
    def add_prediction_head_from_config(self, head_name, config, *args, **kwargs):
        head_type = config.get("head_type") if isinstance(config, dict) else None
        entry = HEAD_TYPES.get(head_type)
        if entry is not None and head_type not in self.custom_heads:
            self.register_custom_head(head_type, resolve(entry.head_class))  # first use: import it now
        return original(self, head_name, config, *args, **kwargs)

    return add_prediction_head_from_config


# ---- 8. adapters bug workarounds ----------------------------------------------------------------------------------
def relink_prefix_pools(model: torch.nn.Module) -> None:
    """Re-link prefix-tuning layers to their pool after ``save_pretrained``.

    adapters 1.3's ``save_pretrained`` unlinks every ``PrefixTuningLayer`` from the shared pool (for safe
    serialisation) and never links it back, after which ``train_adapter`` (hence the mixture stage) fails with
    ``'NoneType' object has no attribute 'enable_prefix'``.
    """
    from adapters.methods.prefix_tuning import PrefixTuningLayer

    pool = getattr(getattr(model, "base_model", model), "prefix_tuning", None)
    if pool is None:
        return
    for layer in [m for m in model.modules() if isinstance(m, PrefixTuningLayer)]:
        if getattr(layer, "pool", None) is None:
            layer.set_pool(pool)


# ---- 9. attention under CPU bf16 autocast --------------------------------------------------------------------------
SDPA_ATTENTION_CLASSES = (
    ("adapters.models.bert.modeling_bert", "BertSdpaSelfAttentionWithAdapters"),
    ("adapters.models.roberta.modeling_roberta", "RobertaSdpaSelfAttentionWithAdapters"),
    ("adapters.models.xlm_roberta.modeling_xlm_roberta", "XLMRobertaSdpaSelfAttentionWithAdapters"),
)
"""Self-attention classes that call ``F.scaled_dot_product_attention`` themselves (the default e5 encoder: BERT);
each is patched when ``adapters`` imports its module (``register``), so registering imports no model code."""


def _patch_attention(module: str, cls: str) -> None:
    patch(resolve(f"{module}:{cls}"), "forward", _make_float32_attention_forward)


def _make_float32_attention_forward(original):
    @functools.wraps(original)
    def forward(self, hidden_states, *args, **kwargs):
        if not float32_attention_active(hidden_states):
            return original(self, hidden_states, *args, **kwargs)
        with Float32Attention():
            return original(self, hidden_states, *args, **kwargs)

    return forward


class _SeamMethods:
    """Model methods the mixture API calls without importing this module."""

    _ensure_mixture_dispatch = ensure_layer_dispatch


def _lazy_method(name: str, path: str):
    def method(self, *args, **kwargs):
        return resolve(path)(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"See :meth:`{path.replace(':', '.')}` (imported on first call)."
    return method


_XSTA_MIXIN = "molora_adapters.xsta.model:XSTAModelMixin"
_XSTA_METHODS = (
    "add_xsta",
    "train_xsta",
    "save_xsta",
    "load_xsta",
    "delete_xsta",
    "_register_xsta",
    "_xsta_store",
    "_get_xsta_config",
)


class Patch(NamedTuple):
    """One wrapped ``adapters`` attribute: ``owner.name = make(original)``."""

    owner: type
    name: str
    make: Callable[[Any], Any]
    inherited: bool = False  # the original may be inherited from a base class


PATCHES: tuple[Patch, ...] = (
    # 2. per-layer dispatch
    Patch(ComposableAdapterLayerBase, "_init_mapping", _make_init_mapping),
    Patch(LoRALinear, "forward", _make_lora_linear_forward),
    # 3. config sections
    Patch(ModelAdaptersConfig, "__init__", _make_config_init),
    Patch(ModelAdaptersConfig, "to_dict", _make_config_to_dict),
    Patch(ModelAdaptersMixin, "init_adapters", _make_init_adapters),
    # 4. forward context, and the rows each BatchSplit / Parallel slice covers
    Patch(ForwardContext, "_call_forward", _make_call_forward),
    Patch(ModelAdaptersMixin, "forward_context", _make_forward_context),
    Patch(LoRALinear, "compose_batch_split", _make_row_tracking_block, inherited=True),
    Patch(LoRALinear, "compose_parallel", _make_row_tracking_block, inherited=True),
    Patch(LoRALinear, "vslice", _make_row_tracking_vslice, inherited=True),
    Patch(LoRALinear, "repeat", _make_row_tracking_repeat, inherited=True),
    # 5. lifecycle
    Patch(ModelAdaptersMixin, "delete_adapter", _make_delete_adapter),
    # 6. prediction heads
    Patch(
        ModelWithFlexibleHeadsAdaptersMixin,
        "add_prediction_head_from_config",
        _make_add_prediction_head_from_config,
    ),
)
"""Every wrapped ``adapters`` attribute (X-STA's self-attention dispatch: :mod:`molora_adapters.xsta.seam`)."""

MODEL_METHODS: tuple[tuple[type, str, Any], ...] = (
    (ComposableAdapterLayerBase, "compose_mixture", compose_mixture_unsupported),
    (LoRALinear, "compose_mixture", compose_mixture_lora),
    *((ModelAdaptersConfig, key, _section_property(key)) for key in CONFIG_SECTIONS),
    *(
        (ModelAdaptersMixin, attr, value)
        for mixin in (MixtureModelMixin, MixtureHubMixin, _SeamMethods)
        for attr, value in vars(mixin).items()
        if not attr.startswith("__")
    ),
    *((ModelAdaptersMixin, name, _lazy_method(name, f"{_XSTA_MIXIN}.{name}")) for name in _XSTA_METHODS),
)
"""Every attribute added to an ``adapters`` class, each through the clash check of ``add_method``."""


def register() -> None:
    """Register ``Mixture``, the mixture API and the X-STA methods with ``adapters`` (idempotent, version-checked)."""
    global _registered
    if _registered:
        return
    check_adapters_version()

    # 1. composition table
    composition.Mixture = Mixture
    ALLOWED_NESTINGS.setdefault(Mixture, [str])
    for parent in (Stack, Parallel, BatchSplit):
        if Mixture not in ALLOWED_NESTINGS[parent]:
            ALLOWED_NESTINGS[parent].append(Mixture)
    if Mixture not in LoRALinear.supported_compositions:
        LoRALinear.supported_compositions = [*LoRALinear.supported_compositions, Mixture]
    ForwardContext.context_args.update(CONTEXT_ARGS)

    # 2-6. wrapped originals, 7. added methods
    for entry in PATCHES:
        patch(entry.owner, entry.name, entry.make, inherited=entry.inherited)
    for owner, name, value in MODEL_METHODS:
        add_method(owner, name, value, source=getattr(value, "__qualname__", None))
    # 9. attention under CPU bf16 autocast
    for module, cls in SDPA_ATTENTION_CLASSES:
        when_imported(module, functools.partial(_patch_attention, module, cls))

    # 6. prediction heads declared by the package root and by plugins through `register_head_type`
    register_head_type("xsta_qa", "molora_adapters.xsta.head:XSTAQAHead")
    for entry in HEAD_TYPES.values():
        if entry.adder_name:
            _install_head_adder(entry)
    _registered = True


from . import _plugin  # noqa: E402  (at the end: registering needs this module complete)

_plugin.register_if_pending(__name__)  # `adapters` may have been first imported by this module
