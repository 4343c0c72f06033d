"""Scaled-dot-product attention in float32 under CPU bf16 autocast.

CPU autocast runs ``scaled_dot_product_attention`` in bfloat16, whose backward is several times slower than
float32's on CPUs (fwd + bwd at 16 x 12 heads x 48 tokens x 32 dims: 14.4 ms against 1.9 ms on a 2-core AVX512-BF16
machine), so a bf16-autocast train step lost to attention what it gained in the linears. Inside the self-attention
forward of the ``adapters`` SDPA classes (patched by :mod:`molora_adapters._integration`), :class:`Float32Attention`
runs only the attention product in float32 and casts its output back; the q/k/v linears (and their LoRA / mixture
deltas) stay in bf16.

:func:`attention_autocast_dtype` switches it off for a block (benchmarks compare both)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = [
    "Float32Attention",
    "attention_autocast_dtype",
    "float32_attention_active",
    "scaled_dot_product_attention",
]

# None: leave attention to autocast (bf16); torch.float32: compute the attention product in float32
_ATTENTION_DTYPE: contextvars.ContextVar[torch.dtype | None] = contextvars.ContextVar(
    "molora_attention_dtype", default=torch.float32
)


@contextlib.contextmanager
def attention_autocast_dtype(dtype: torch.dtype | None) -> Iterator[None]:
    """Within the block, SDPA under CPU bf16 autocast runs in ``dtype`` (`None`: autocast's own bf16).

    Args:
        dtype (`torch.dtype` or `None`): `torch.float32` (the default outside any block) or `None`.
    """
    if dtype not in (None, torch.float32):
        raise ValueError(f"`dtype` must be torch.float32 or None (autocast's choice), got {dtype!r}.")
    token = _ATTENTION_DTYPE.set(dtype)
    try:
        yield
    finally:
        _ATTENTION_DTYPE.reset(token)


def float32_attention_active(hidden_states: torch.Tensor) -> bool:
    """Whether an attention forward on ``hidden_states`` should compute SDPA in float32 (CPU bf16 autocast)."""
    return (
        hidden_states.device.type == "cpu"
        and _cpu_autocast_dtype() == torch.bfloat16
        and _ATTENTION_DTYPE.get() is torch.float32
    )


def _cpu_autocast_dtype() -> torch.dtype | None:
    """The CPU autocast dtype, or `None` when CPU autocast is off (torch < 2.4 has only the CPU-named calls)."""
    if hasattr(torch, "get_autocast_dtype"):
        return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
    return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None


def scaled_dot_product_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, **kwargs
) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` for the library's own attention layers (the OIE head's predicate
    attention). When a backward will follow under CPU bf16 autocast, the product runs in float32 and the output
    comes back in the query's dtype: bf16's backward is the slow part (fwd + bwd at 39 x 8 heads x 40 tokens x 104
    dims: 74 ms of CPU in bf16, 34 ms in float32 with the casts), while its forward alone is faster than float32's
    (33 against 98 ms at 256 rows), so inference keeps bf16. Elsewhere it is the plain call.

    Args:
        query, key, value (`torch.Tensor`): ``(b, h, n, d)`` as for ``F.scaled_dot_product_attention``.
        **kwargs: its other arguments (``attn_mask``, ``dropout_p``, ``is_causal``, ``scale``).
    """
    backward = torch.is_grad_enabled() and (query.requires_grad or key.requires_grad or value.requires_grad)
    if not (backward and float32_attention_active(query)):
        return F.scaled_dot_product_attention(query, key, value, **kwargs)
    mask = kwargs.get("attn_mask")
    if isinstance(mask, torch.Tensor) and mask.is_floating_point():
        kwargs["attn_mask"] = mask.float()
    with torch.autocast("cpu", enabled=False):
        out = F.scaled_dot_product_attention(query.float(), key.float(), value.float(), **kwargs)
    return out.to(query.dtype)


class Float32Attention(TorchFunctionMode):
    """A function mode that runs ``F.scaled_dot_product_attention`` in float32 (autocast off for that call) and
    returns its output in the query's dtype; every other function passes through unchanged."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        query, key, value, *rest = args
        dtype = query.dtype
        mask = kwargs.get("attn_mask", rest[0] if rest else None)
        if isinstance(mask, torch.Tensor) and mask.is_floating_point():
            if rest:
                rest[0] = mask.float()
            else:
                kwargs["attn_mask"] = mask.float()
        with torch.autocast("cpu", enabled=False):
            out = func(query.float(), key.float(), value.float(), *rest, **kwargs)
        return out.to(dtype)
