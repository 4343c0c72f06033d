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

__all__ = ["Float32Attention", "attention_autocast_dtype", "float32_attention_active"]

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
