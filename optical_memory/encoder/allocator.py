"""Opt-in C-allocator tuning for CPU inference.

glibc hands every allocation above its mmap threshold (dynamic, 32 MB at most)
fresh pages from the kernel and gives them back on free, so each large
activation of a CPU forward page-faults its memory in again on first touch.
A base page's forward still faults in about 1.9 GB that way after the
encoder's own mask-buffer reuse; on this repo's 2-core machine tuning took the
forward from 8.3 to 7.5 s (benchmarks/encoder_cpu_memory.py).

:func:`tune_cpu_allocator` raises glibc's mmap and trim thresholds so large
blocks come from the heap and stay there for reuse. It is process-wide and
lasting: the process keeps its peak heap instead of returning it to the OS.
Whether a freed block is reused by the next one of its size depends on how
the heap is laid out around it (a 64-byte-aligned request does not always
fit back into the hole it left), so the faults saved vary from process to
process; the benchmark above reports what it measured.
That is why the library never calls it by itself. Setting the environment
variables ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` before
the process starts does the same.
"""
from __future__ import annotations

import ctypes
import logging
import sys

from optical_memory.errors import ConfigError

logger = logging.getLogger(__name__)

# mallopt(3) parameter numbers (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_INT_MAX = 2**31 - 1


def tune_cpu_allocator(threshold_bytes: int = 1 << 30) -> bool:
    """Serve allocations up to ``threshold_bytes`` from glibc's heap and keep
    up to that much freed memory in it, for the rest of the process.

    Returns True when both settings took, False when the C library is not
    glibc (macOS, musl, Windows) and nothing changed. ``threshold_bytes``
    must be a positive int of at most 2**31 − 1 (mallopt takes an int).
    """
    if isinstance(threshold_bytes, bool) or not isinstance(threshold_bytes, int):
        raise ConfigError(f"threshold_bytes must be an int, got {threshold_bytes!r}")
    if not 0 < threshold_bytes <= _INT_MAX:
        raise ConfigError(f"threshold_bytes must be in 1..{_INT_MAX}, got {threshold_bytes}")
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        logger.debug("tune_cpu_allocator: not glibc, nothing changed")
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    ok = libc.mallopt(M_MMAP_THRESHOLD, threshold_bytes) == 1
    ok = libc.mallopt(M_TRIM_THRESHOLD, threshold_bytes) == 1 and ok
    if not ok:
        logger.warning("tune_cpu_allocator: glibc refused a threshold of %d bytes", threshold_bytes)
    return ok
