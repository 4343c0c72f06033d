"""bf16 autocast where the hardware runs it natively, float32 elsewhere."""

from __future__ import annotations

import contextlib
import functools
from typing import Literal

import torch

Precision = Literal["auto", "bf16", "fp32"]
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")

_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (``avx512_bf16`` or AMX, read from ``/proc/cpuinfo``).

    Without them oneDNN emulates bf16 matmuls, which is slower than float32, so ``"auto"`` keeps float32.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return any(flag in flags for flag in _CPU_BF16_FLAGS)


def resolve_precision(precision: Precision, device: torch.device | str) -> Literal["bf16", "fp32"]:
    """``"auto"`` -> ``"bf16"`` on CPUs with native bf16 and on CUDA devices that support it, else ``"fp32"``.

    Args:
        precision (`str`): ``"auto"``, ``"bf16"`` or ``"fp32"``.
        device (`torch.device` or `str`): where the model runs.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {PRECISIONS}, got {precision!r}.")
    if precision != "auto":
        return precision  # type: ignore[return-value]
    device = torch.device(device)
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def autocast(
    precision: Literal["bf16", "fp32"], device: torch.device | str
) -> contextlib.AbstractContextManager:
    """``torch.autocast(device_type, dtype=torch.bfloat16)`` for ``"bf16"``, a no-op for ``"fp32"``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
