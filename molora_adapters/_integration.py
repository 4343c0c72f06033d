"""The one seam between molora_adapters and ``adapters`` internals.

``adapters`` 1.3 has no registry for composition blocks, so registering ``Mixture`` means touching its internals.
Every such touch lives here, is idempotent, and is guarded by the supported ``adapters`` version range:

1. composition table: ``Mixture`` is findable by ``AdapterCompositionBlock.from_dict`` and listed in
   ``ALLOWED_NESTINGS`` (alone, or inside ``Stack`` / ``Parallel`` / ``BatchSplit``);
2. per-layer dispatch: ``_init_mapping`` maps ``Mixture`` to ``compose_mixture``, implemented for ``LoRALinear``
   and a no-op for other adapter layers; ``LoRALinear.forward`` sends a top-level ``Mixture`` to
   :func:`~molora_adapters.mixture.layer.mixture_linear_output`, which fuses the residual add into the experts' B
   matmul (every other setup runs adapters' forward unchanged);
3. config persistence: ``ModelAdaptersConfig`` carries a ``mixtures`` entry through ``to_dict`` / ``__init__``, so
   ``save_pretrained`` / ``from_pretrained`` rebuild the routers (``init_adapters``);
4. forward context: ``output_router_logits`` and ``language_ids`` become context arguments, and outputs gain
   ``router_logits`` and ``mixture_aux_loss``; ``LoRALinear``'s ``BatchSplit`` / ``Parallel`` record which batch rows
   each slice covers (``context.mixture_rows``), so a mixture slices the mask and the language ids alike;
5. lifecycle: deleting an adapter that a mixture uses is rejected;
6. prediction heads: a small hook, :func:`register_head_type`, through which sub-packages declare custom head
   types *by import path*. A head class is imported only when a model actually adds a head of that type (a saved
   head rebuilt by ``from_pretrained`` / ``load_head``, or ``model.add_<type>_head``), so building a flex-head
   model never imports the OIE, data or LLM stacks;
7. the model methods of :class:`~molora_adapters.mixture.model.MixtureModelMixin` and
   :class:`~molora_adapters.mixture.hub.MixtureHubMixin` (a name ``adapters`` already defines is refused);
8. adapters bug workarounds: :func:`relink_prefix_pools`;
9. X-STA (:func:`register_xsta`): the GDKS dispatch in BERT / RoBERTa / XLM-R self-attention, the
   ``xsta_paired`` context argument, ``xsta`` config persistence, the ``"xsta_qa"`` head type (through
   :func:`register_head_type`) and the ``*_xsta`` model methods. :mod:`molora_adapters.xsta` loads only when used.

Every wrapped original must exist (:func:`_patch` raises ``ImportError`` at import otherwise), so an ``adapters``
release that renames one fails loudly instead of silently skipping the patch. Nothing else in the package modifies
third-party objects.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
from collections.abc import Iterator

import adapters
import torch
from adapters import composition
from adapters.composition import ALLOWED_NESTINGS, BatchSplit, Parallel, Stack
from adapters.configuration.model_adapters_config import ModelAdaptersConfig
from adapters.context import ForwardContext
from adapters.heads.model_mixin import ModelWithFlexibleHeadsAdaptersMixin
from adapters.methods.adapter_layer_base import ComposableAdapterLayerBase
from adapters.methods.lora import LoRALinear
from adapters.model_mixin import ModelAdaptersMixin
from packaging.version import Version
from transformers.utils import ModelOutput

from .mixture.composition import Mixture
from .mixture.config import MixtureConfig
from .mixture.hub import MixtureHubMixin
from .mixture.layer import compose_mixture_lora, compose_mixture_unsupported, mixture_linear_output
from .mixture.model import MixtureModelMixin
from .mixture.router import ROUTERS_ATTR

SUPPORTED_ADAPTERS_RANGE = (Version("1.3.0"), Version("1.4.0"))
CONTEXT_ARGS = ("output_router_logits", "language_ids")
_MARK = "__molora_patched__"
_registered = False


def check_adapters_version(version: str | None = None) -> None:
    """Raise ``ImportError`` unless ``adapters`` (or ``version``) is in the supported range."""
    found = Version(version or adapters.__version__)
    low, high = SUPPORTED_ADAPTERS_RANGE
    if not low <= found < high:
        raise ImportError(
            f"molora_adapters supports adapters>={low},<{high}, but adapters {found} is installed. "
            f"Install a supported version: pip install 'adapters>={low},<{high}'."
        )


def _patch(owner: type, name: str, make):
    """Replace ``owner.name`` by ``make(original)`` once (idempotent through a marker attribute).

    Raises:
        ImportError: ``owner`` defines no ``name`` (an ``adapters`` release renamed or moved it).
    """
    original = owner.__dict__.get(name)
    if original is None:
        raise ImportError(
            f"molora_adapters wraps `{owner.__module__}.{owner.__qualname__}.{name}`, which adapters "
            f"{adapters.__version__} does not define; install a supported version "
            f"(adapters>={SUPPORTED_ADAPTERS_RANGE[0]},<{SUPPORTED_ADAPTERS_RANGE[1]})."
        )
    if getattr(original, _MARK, False):
        return
    patched = make(original)
    setattr(patched, _MARK, True)
    setattr(owner, name, patched)


# ---- 2. per-layer dispatch -----------------------------------------------------------------------------------------
def _make_init_mapping(original):
    @functools.wraps(original)
    def _init_mapping(self):
        original(self)
        self.composition_to_func_map[Mixture] = "compose_mixture"

    return _init_mapping


# the fused-output path of a top-level Mixture; None while a reference composition is installed
_mixture_output = mixture_linear_output


def _make_lora_linear_forward(original):
    @functools.wraps(original)
    def forward(self, input_states: torch.Tensor):
        if not self.merged and _mixture_output is not None and not self.fan_in_fan_out:
            adapter_setup = self.get_active_setup()
            if isinstance(adapter_setup, Mixture):
                # the frozen linear exactly as adapters computes it (Linear, Linear4bit, ... by the MRO)
                layer_output = super(LoRALinear, self).forward(input_states)
                return _mixture_output(self, adapter_setup, input_states, layer_output)
        return original(self, input_states)

    return forward


@contextlib.contextmanager
def override_lora_mixture_forward(fn) -> Iterator[None]:
    """Temporarily route ``LoRALinear``'s mixture composition through ``fn`` (reference checks, benchmarks); the
    fused-output path is off meanwhile, so every mixture layer runs ``fn``."""
    global _mixture_output
    fast, fused = LoRALinear.compose_mixture, _mixture_output
    LoRALinear.compose_mixture, _mixture_output = fn, None
    try:
        yield
    finally:
        LoRALinear.compose_mixture, _mixture_output = fast, fused


def ensure_layer_dispatch(model: torch.nn.Module) -> None:
    """Add the ``Mixture`` entry to layers built before the plugin was imported.

    Attached to every ``adapters`` model as ``_ensure_mixture_dispatch``, so the mixture API calls it without
    importing this module (no ``mixture`` -> seam back edge).
    """
    for module in model.modules():
        if isinstance(module, ComposableAdapterLayerBase):
            module.composition_to_func_map.setdefault(Mixture, "compose_mixture")


# ---- 3. config persistence -----------------------------------------------------------------------------------------
def _mixtures(self) -> dict:
    """Name -> ``MixtureConfig`` dict of the model's mixtures (persisted with the adapters config)."""
    return self.__dict__.setdefault("_molora_mixtures", {})


def _make_config_init(original):
    @functools.wraps(original)
    def __init__(self, **kwargs):
        mixtures = kwargs.pop("mixtures", None) or {}
        original(self, **kwargs)
        self.__dict__["_molora_mixtures"] = {k: dict(v) for k, v in mixtures.items()}

    return __init__


def _make_config_to_dict(original):
    @functools.wraps(original)
    def to_dict(self):
        out = original(self)
        out["mixtures"] = {k: dict(v) for k, v in self.mixtures.items()}
        return out

    return to_dict


def _make_init_adapters(original):
    @functools.wraps(original)
    def init_adapters(self, model_config, adapters_config):
        original(self, model_config, adapters_config)
        store = getattr(self.base_model, ROUTERS_ATTR, None)
        for name, cfg in list(self.adapters_config.mixtures.items()):
            if store is None or name not in store:
                self._register_mixture(name, MixtureConfig.from_dict(cfg))
                store = getattr(self.base_model, ROUTERS_ATTR, None)

    return init_adapters


# ---- 4. forward context --------------------------------------------------------------------------------------------
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
        return original(self, context, *args, **kwargs)

    return forward_context


def _make_call_forward(original):
    @functools.wraps(original)
    def _call_forward(self, model, f, *args, **kwargs):
        results = original(self, model, f, *args, **kwargs)
        if getattr(self, "output_router_logits", False):
            losses = getattr(self, "mixture_aux_losses", [])
            if losses:
                aux = torch.stack(
                    losses
                ).mean()  # mean over routed layers: coefficients do not scale with depth
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


def track_lora_rows() -> None:
    """Install the row tracking on ``LoRALinear`` (idempotent; the block methods are inherited, so the originals
    are looked up through the class, not its ``__dict__``)."""
    makers = {
        "compose_batch_split": _make_row_tracking_block,
        "compose_parallel": _make_row_tracking_block,
        "vslice": _make_row_tracking_vslice,
        "repeat": _make_row_tracking_repeat,
    }
    for name, make in makers.items():
        original = getattr(LoRALinear, name)
        if getattr(original, _MARK, False):
            continue
        patched = make(original)
        setattr(patched, _MARK, True)
        setattr(LoRALinear, name, patched)


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


def _resolve(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


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
        ModelWithFlexibleHeadsAdaptersMixin.__dict__.get(entry.adder_name), _MARK, False
    ):
        delattr(ModelWithFlexibleHeadsAdaptersMixin, entry.adder_name)


def _install_head_adder(entry: _HeadType) -> None:
    def add_head(self, head_name: str, **kwargs):
        return _resolve(entry.adder)(self, head_name, **kwargs)

    add_head.__name__ = add_head.__qualname__ = entry.adder_name
    add_head.__doc__ = f"Add a head with ``{entry.adder}`` (imported on first use)."
    setattr(add_head, _MARK, True)
    existing = ModelWithFlexibleHeadsAdaptersMixin.__dict__.get(entry.adder_name)
    if existing is not None and not getattr(existing, _MARK, False):
        raise ImportError(
            f"adapters already defines `{entry.adder_name}`; molora_adapters will not replace it."
        )
    setattr(ModelWithFlexibleHeadsAdaptersMixin, entry.adder_name, add_head)


def _make_add_prediction_head_from_config(original):
    @functools.wraps(original)
    def add_prediction_head_from_config(self, head_name, config, *args, **kwargs):
        head_type = config.get("head_type") if isinstance(config, dict) else None
        entry = HEAD_TYPES.get(head_type)
        if entry is not None and head_type not in self.custom_heads:
            self.register_custom_head(head_type, _resolve(entry.head_class))  # first use: import it now
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


class _SeamMethods:
    """Model methods the mixture API calls without importing this module."""

    _ensure_mixture_dispatch = ensure_layer_dispatch


def _copy_methods(mixin: type, target: type) -> None:
    """Attach ``mixin``'s methods to ``target``, refusing to shadow anything ``target`` (or a base) defines."""
    for attr, value in vars(mixin).items():
        if attr.startswith("__"):
            continue
        if target.__dict__.get(attr) is value:
            continue  # registered before (idempotent)
        if hasattr(target, attr):
            raise ImportError(
                f"`{target.__qualname__}.{attr}` already exists in adapters {adapters.__version__}; "
                f"molora_adapters will not replace it with `{mixin.__qualname__}.{attr}`."
            )
        setattr(target, attr, value)


def register() -> None:
    """Register ``Mixture`` and the mixture API with ``adapters`` (idempotent, version-checked)."""
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

    # 2. per-layer dispatch
    _patch(ComposableAdapterLayerBase, "_init_mapping", _make_init_mapping)
    if "compose_mixture" not in ComposableAdapterLayerBase.__dict__:
        ComposableAdapterLayerBase.compose_mixture = compose_mixture_unsupported
    LoRALinear.compose_mixture = compose_mixture_lora
    _patch(LoRALinear, "forward", _make_lora_linear_forward)
    if Mixture not in LoRALinear.supported_compositions:
        LoRALinear.supported_compositions = [*LoRALinear.supported_compositions, Mixture]

    # 3. config persistence
    if not isinstance(ModelAdaptersConfig.__dict__.get("mixtures"), property):
        ModelAdaptersConfig.mixtures = property(_mixtures)
    _patch(ModelAdaptersConfig, "__init__", _make_config_init)
    _patch(ModelAdaptersConfig, "to_dict", _make_config_to_dict)
    _patch(ModelAdaptersMixin, "init_adapters", _make_init_adapters)

    # 4. forward context
    ForwardContext.context_args.update(CONTEXT_ARGS)
    _patch(ForwardContext, "_call_forward", _make_call_forward)
    _patch(ModelAdaptersMixin, "forward_context", _make_forward_context)
    track_lora_rows()

    # 5. lifecycle
    _patch(ModelAdaptersMixin, "delete_adapter", _make_delete_adapter)

    # 6. prediction heads (declared by the package root and by plugins through `register_head_type`)
    _patch(
        ModelWithFlexibleHeadsAdaptersMixin,
        "add_prediction_head_from_config",
        _make_add_prediction_head_from_config,
    )
    for entry in HEAD_TYPES.values():
        if entry.adder_name:
            _install_head_adder(entry)

    # 7. model methods
    for mixin in (MixtureModelMixin, MixtureHubMixin, _SeamMethods):
        _copy_methods(mixin, ModelAdaptersMixin)

    # 9. X-STA
    register_xsta()
    _registered = True


# ---- 9. X-STA ------------------------------------------------------------------------------------------------------
_XSTA_MARK = "__molora_xsta_patched__"
XSTA_ATTENTION_CLASSES = (
    ("adapters.models.bert.modeling_bert", "BertSelfAttentionWithAdapters"),
    ("adapters.models.bert.modeling_bert", "BertSdpaSelfAttentionWithAdapters"),
    ("adapters.models.roberta.modeling_roberta", "RobertaSelfAttentionWithAdapters"),
    ("adapters.models.roberta.modeling_roberta", "RobertaSdpaSelfAttentionWithAdapters"),
    ("adapters.models.xlm_roberta.modeling_xlm_roberta", "XLMRobertaSelfAttentionWithAdapters"),
    ("adapters.models.xlm_roberta.modeling_xlm_roberta", "XLMRobertaSdpaSelfAttentionWithAdapters"),
)
_XSTA_METHODS = ("add_xsta", "train_xsta", "save_xsta", "load_xsta", "delete_xsta")


def _patch_xsta(owner: type, name: str, make) -> None:
    """Like :func:`_patch`, with its own marker, so X-STA wraps the mixture's patches instead of being skipped."""
    original = owner.__dict__.get(name)
    if original is not None and getattr(original, _XSTA_MARK, False):
        return
    patched = make(original)
    setattr(patched, _XSTA_MARK, True)
    setattr(owner, name, patched)


def _make_xsta_attention_forward(original):
    @functools.wraps(original)
    def forward(self, hidden_states, *args, **kwargs):
        context = ForwardContext.get_context()
        state = getattr(context, "xsta_state", None) if context is not None else None
        if state is not None and state.gdks is not None and state.gdks.layer == self.layer_idx:
            from .xsta.layer import gdks_attention

            return gdks_attention(self, hidden_states, state, context)
        return original(self, hidden_states, *args, **kwargs)

    return forward


def _make_xsta_forward_context(original):
    @functools.wraps(original)
    def forward_context(self, context, *args, **kwargs):
        result = original(self, context, *args, **kwargs)
        context.xsta_state = None
        context.xsta_cross_attention = None
        if getattr(context, "xsta_paired", None):
            from .xsta.layer import begin_paired_forward

            input_ids = kwargs.get("input_ids", args[0] if args else None)
            context.xsta_state = begin_paired_forward(
                self, context, getattr(context, "mixture_attention_mask", None), input_ids
            )
        return result

    return forward_context


def _make_xsta_config_init(original):
    @functools.wraps(original)
    def __init__(self, **kwargs):
        xsta = kwargs.pop("xsta", None) or {}
        original(self, **kwargs)
        self.__dict__["_molora_xsta"] = {k: dict(v) for k, v in xsta.items()}

    return __init__


def _make_xsta_config_to_dict(original):
    @functools.wraps(original)
    def to_dict(self):
        out = original(self)
        out["xsta"] = {k: dict(v) for k, v in self.xsta.items()}
        return out

    return to_dict


def _make_xsta_init_adapters(original):
    @functools.wraps(original)
    def init_adapters(self, model_config, adapters_config):
        original(self, model_config, adapters_config)
        saved = self.adapters_config.xsta
        if saved:
            from .xsta.config import XSTAConfig
            from .xsta.layer import GDKS_ATTR

            store = getattr(self.base_model, GDKS_ATTR, None)
            for name, cfg in list(saved.items()):
                if store is None or name not in store:
                    self._register_xsta(name, XSTAConfig.from_dict(cfg))

    return init_adapters


def _xsta_method(name: str):
    def method(self, *args, **kwargs):
        from .xsta.model import XSTAModelMixin

        return getattr(XSTAModelMixin, name)(self, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"See :meth:`molora_adapters.xsta.model.XSTAModelMixin.{name}`."
    return method


def register_xsta() -> None:
    """Install the X-STA seam (idempotent; called by :func:`register`)."""
    import importlib

    for module_name, cls_name in XSTA_ATTENTION_CLASSES:
        cls = getattr(importlib.import_module(module_name), cls_name)
        _patch_xsta(cls, "forward", _make_xsta_attention_forward)
    ForwardContext.context_args.add("xsta_paired")
    _patch_xsta(ModelAdaptersMixin, "forward_context", _make_xsta_forward_context)
    if not isinstance(ModelAdaptersConfig.__dict__.get("xsta"), property):
        ModelAdaptersConfig.xsta = property(lambda self: self.__dict__.setdefault("_molora_xsta", {}))
    _patch_xsta(ModelAdaptersConfig, "__init__", _make_xsta_config_init)
    _patch_xsta(ModelAdaptersConfig, "to_dict", _make_xsta_config_to_dict)
    _patch_xsta(ModelAdaptersMixin, "init_adapters", _make_xsta_init_adapters)
    register_head_type("xsta_qa", "molora_adapters.xsta.head:XSTAQAHead")
    for name in _XSTA_METHODS:
        setattr(ModelAdaptersMixin, name, _xsta_method(name))
    ModelAdaptersMixin._register_xsta = _xsta_method("_register_xsta")
    ModelAdaptersMixin._xsta_store = _xsta_method("_xsta_store")
    ModelAdaptersMixin._get_xsta_config = _xsta_method("_get_xsta_config")


from . import _plugin  # noqa: E402  (at the end: registering needs this module complete)

_plugin.register_if_pending(__name__)  # `adapters` may have been first imported by this module
