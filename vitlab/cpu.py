"""Process settings that keep training on a CPU at full speed; vitlab.train applies them on import.

Two costs a bare PyTorch loop pays on a CPU, measured on the ViT-Ti benchmark
(benchmarks/train_throughput.py, 2 cores): denormal floats, which GELU tails and attention
drift into as training goes on (steps grew 25% slower over 30 steps, most of it in the
attention backward), and glibc handing freed activation memory back to the kernel after every
step, so the next step page-faults it back in (5,000-13,000 faults a step, ~4% of its time).
"""
from __future__ import annotations

import ctypes
import platform

import torch

# glibc's mallopt() parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # the largest glibc accepts on 64-bit
_TRIM_THRESHOLD = 2**31 - 1


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the kernel.

    Blocks up to 32 MB come from the heap and the heap is not trimmed, so the process holds on
    to its peak working set. The usual advice for PyTorch on CPU is the same (jemalloc or
    tcmalloc, which need LD_PRELOAD); this works in a process already running, such as a
    Jupyter kernel. A no-op returning False where the C library is not glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def configure() -> None:
    """Flush denormals to zero (as GPUs do) and keep freed memory, for the whole process.

    Early, before the process trains anything: flushing switched on after the first training
    steps left the attention backward as slow as before (measured), so it is not scoped to a run.
    """
    torch.set_flush_denormal(True)
    keep_freed_memory()
