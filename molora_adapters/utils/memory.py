"""Keep freed heap memory in the process, so that each forward does not page-fault its activations afresh (glibc).

glibc's ``malloc`` gives memory back to the kernel in two ways: allocations above ``M_MMAP_THRESHOLD`` are their
own ``mmap`` (unmapped on ``free``), and free space above ``M_TRIM_THRESHOLD`` at the top of the heap is returned
by shrinking it. Both thresholds start low and adapt (the mmap threshold rises to the largest block freed, up to
32 MiB on 64-bit; the trim threshold follows at twice that). A transformer forward frees its activations layer by
layer, so the heap grows and shrinks by tens of MiB several times per forward, and every regrowth page-faults
fresh, zeroed pages. How many times depends on where small long-lived blocks happen to sit in the heap, so the
cost of the same forward varies from run to run: measured on the 6-layer, 384-wide encoder of
``benchmarks/bench_mixture.py`` (batch 16 x 128), 0 to 42,000 minor page faults per forward (up to 160 MiB
zeroed), for one LoRA and for the mixture alike; with :func:`retain_freed_memory`, 0 to 2.

This is a process-wide setting: a program (a script, the example, a benchmark, a command line) calls
:func:`retain_freed_memory` once at its start. The library never calls it on import. The cost is memory: the
process keeps its peak heap instead of returning it between forwards. The same settings can be given from outside
the process, before it starts, as
``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647``.
"""

from __future__ import annotations

import ctypes
import platform
import threading

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# the largest mmap threshold glibc accepts on 64-bit: HEAP_MAX_SIZE / 2
MAX_MMAP_THRESHOLD = 32 * 1024 * 1024
MAX_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes a C int

_lock = threading.Lock()
_settings: dict[str, int] | None = None


def _glibc():
    """The process's C library, if it is glibc (``None`` elsewhere: musl's ``mallopt`` is a no-op)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def retain_freed_memory(
    trim_threshold: int = MAX_TRIM_THRESHOLD, mmap_threshold: int = MAX_MMAP_THRESHOLD
) -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the kernel (see the module docstring).

    Call it once, at the start of a program; it affects the whole process. Returns ``False`` (and changes nothing)
    where the C library is not glibc.

    Args:
        trim_threshold (`int`, *optional*, defaults to 2 GiB - 1, the largest value): free bytes at the top of the
            heap that glibc keeps before shrinking it (``M_TRIM_THRESHOLD``).
        mmap_threshold (`int`, *optional*, defaults to 32 MiB): allocations of at least this many bytes get their
            own ``mmap`` (``M_MMAP_THRESHOLD``); smaller ones come from the heap, where freed memory is reused.
            At most 32 MiB (glibc's limit on 64-bit).
    """
    global _settings
    for name, value, limit, unit in (
        ("trim_threshold", trim_threshold, MAX_TRIM_THRESHOLD, "bytes"),
        ("mmap_threshold", mmap_threshold, MAX_MMAP_THRESHOLD, "bytes; glibc's limit on 64-bit"),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise ValueError(f"`{name}` must be an int in [0, {limit}] ({unit}), got {value!r}.")
    libc = _glibc()
    if libc is None:
        return False
    with _lock:
        # setting either threshold also stops glibc adapting them
        if not libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) or not libc.mallopt(
            _M_TRIM_THRESHOLD, trim_threshold
        ):
            raise OSError("glibc `mallopt` refused the thresholds; the allocator settings are unchanged.")
        _settings = {"mmap_threshold": mmap_threshold, "trim_threshold": trim_threshold}
    return True


def malloc_settings() -> dict[str, int] | None:
    """The thresholds :func:`retain_freed_memory` set in this process, or ``None`` (glibc's adaptive defaults)."""
    return dict(_settings) if _settings is not None else None


def minor_page_faults() -> int:
    """Minor page faults of this process so far (all threads), from ``getrusage``: each is a page the kernel
    mapped, most of them zeroed fresh memory."""
    import resource  # Unix only

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
