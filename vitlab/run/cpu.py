"""Process settings that keep training on a CPU at full speed, which training applies before its
first step (train.fit, the cost calibration), and each run's thread count from the cores other
processes leave it.

Two costs a bare PyTorch loop pays on a CPU, measured on the ViT-Ti benchmark
(benchmarks/train_throughput.py, 2 cores): denormal floats, which GELU tails and attention
drift into as training goes on (steps grew 25% slower over 30 steps, most of it in the
attention backward), and glibc handing freed activation memory back to the kernel after every
step, so the next step page-faults it back in (5,000-13,000 faults a step, ~4% of its time).
"""
from __future__ import annotations

import ctypes
import os
import platform
import time

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


# A run's threads are judged over at least this long: jiffies are 10 ms, and a shorter window
# would take a passing blip for a neighbour.
MIN_SAMPLE_S = 0.2


def usage_mark() -> tuple[float, float, float] | None:
    """(wall seconds, busy CPU seconds of all cores, this process's CPU seconds) now; None where
    there is no /proc/stat (not Linux)."""
    try:
        with open("/proc/stat") as f:
            jiffies = [int(v) for v in f.readline().split()[1:9]]
    except OSError:
        return None
    busy = sum(jiffies) - jiffies[3] - jiffies[4]  # all but idle and iowait
    return time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), time.process_time()


def _others(since: tuple[float, float, float], now: tuple[float, float, float]) -> float:
    """Cores other processes kept busy between two usage marks."""
    return max(0.0, (now[1] - since[1]) - (now[2] - since[2])) / max(now[0] - since[0], 1e-9)


def others_busy(since: tuple[float, float, float] | None) -> float | None:
    """Cores other processes kept busy since a usage mark; None without /proc/stat."""
    now = usage_mark()
    return None if since is None or now is None else _others(since, now)


def _fitting(others: float) -> int:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(usable, round((os.cpu_count() or 1) - others)))


def threads_for_run(since: tuple[float, float, float] | None) -> int:
    """The intra-op threads a CPU run starts with: the cores other processes left free since
    `since` (a usage_mark taken as the run started loading), at least 1 and at most the cores
    this process may use; OMP_NUM_THREADS, where set, decides instead.

    OpenMP threads spin while they wait for each other, so a run with more threads than free
    cores stalls on every operator: beside a second run on 2 cores each fell to a fifth of its
    speed alone, where one thread each kept 70-80% (benchmarks/shared_cpu.py).
    """
    if since is None or "OMP_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    wall = time.perf_counter() - since[0]
    if wall < MIN_SAMPLE_S:
        time.sleep(MIN_SAMPLE_S - wall)
    return _fitting(_others(since, usage_mark()))


def _set_threads(n: int) -> None:
    """torch.set_num_threads(n) only where n differs from the count now. ATen's set_num_threads
    also turns MKL's dynamic threading off for the rest of the process: setting the count torch
    already had (2 of 2 cores) cut the quickstart's ViT from ~4,000 to ~2,900 images/s, its
    attention and GELU kernels 2-3x slower (torch 2.14, 2 cores). A run lowered mid-run and a
    later run in the same kernel raised again stay in that slower state (~3,300)."""
    if n != torch.get_num_threads():
        torch.set_num_threads(n)


class ThreadShare:
    """A CPU run's threads kept within the cores other processes leave it while it trains.

    Every CHECK_S seconds the others' use is judged again and the threads are lowered, never
    raised, if they took cores (a neighbour that starts mid-run: a run left at 2 threads beside
    one trained at a tenth of its speed). Results differ in their last bits with the thread
    count, so the changes, (step, threads) from the run's start, are kept by its checkpoints
    and a resumed run starts from the last one: on an unchanging machine it ends bitwise as the
    uninterrupted run did.
    """
    CHECK_S = 2.0

    def __init__(self, changes: list[tuple[int, int]], adapt: bool):
        self.changes = [tuple(c) for c in changes]
        self.adapt = adapt and "OMP_NUM_THREADS" not in os.environ
        self.mark = usage_mark()
        _set_threads(self.changes[-1][1])

    def check(self, step: int) -> None:
        if not self.adapt or self.mark is None or time.perf_counter() - self.mark[0] < self.CHECK_S:
            return
        now = usage_mark()
        fitting, self.mark = _fitting(_others(self.mark, now)), now
        if fitting < torch.get_num_threads():
            _set_threads(fitting)
            self.changes.append((step, fitting))
