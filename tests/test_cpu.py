import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vitlab.run import cpu

# In a fresh process, as these settings are for the whole process, for good: the heap handed back
# to the kernel after freeing a step's worth of blocks, with glibc's defaults, then once
# keep_freed_memory() has run.
HEAP_AFTER_FREE = """
import ctypes
from vitlab.run import cpu
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_long]
def returned_mb():
    blocks = [libc.malloc(100_000) for _ in range(200)]  # 20 MB of heap, as a step's activations
    top = libc.sbrk(0)
    for block in reversed(blocks):
        libc.free(block)
    return (top - libc.sbrk(0)) / 1e6  # MB handed back to the kernel
print(returned_mb())
assert cpu.keep_freed_memory()
print(returned_mb())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_memory_stays_with_the_process():
    out = subprocess.run([sys.executable, "-c", HEAP_AFTER_FREE], capture_output=True, text=True, check=True)
    default, kept = map(float, out.stdout.split())
    assert default > 15  # glibc's default: the next step faults it back in
    assert kept == 0


# Whether a denormal survives in a fresh process: after importing vitlab's training, then after
# training a step (one process: the import alone comes first).
DENORMAL_SURVIVES = """
import torch
import vitlab.run.train
print(float(torch.tensor([1e-30]) * 1e-10) != 0.0)
from vitlab.run.config import RunConfig
from vitlab.run.models import build_model
cfg = RunConfig(dataset="digits", depth=1, width=16, heads=2, mlp_dim=32, patch_size=4, train_size=64,
                steps=1, batch_size=32)
vitlab.run.train.fit(cfg, build_model(cfg), progress=False)
print(float(torch.tensor([1e-30]) * 1e-10) != 0.0)
"""


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 flush-to-zero only")
def test_training_processes_flush_denormals():
    """Training flushes denormals for the whole process; importing vitlab's training changes nothing."""
    out = subprocess.run([sys.executable, "-c", DENORMAL_SURVIVES], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"], out.stdout


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc/stat")
def test_a_run_takes_only_the_cores_others_leave(monkeypatch):
    """With every core busy in other processes, a run takes one thread, where torch's default
    is one per core; with OMP_NUM_THREADS set, that decides."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.5)
        assert cpu.threads_for_run(cpu.usage_mark()) == 1
    finally:
        for p in busy:
            p.kill()
            p.wait()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu.threads_for_run(cpu.usage_mark()) == torch.get_num_threads()


def test_a_run_that_keeps_torchs_thread_count_leaves_torchs_threading_alone(monkeypatch):
    """torch.set_num_threads, even to the count torch already had, turns MKL's dynamic threading
    off for the process: the quickstart's ViT then trained at ~2,900 images/s instead of ~4,000
    (2 cores). So a run sets the count only to change it."""
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    cpu.ThreadShare([(0, torch.get_num_threads())], adapt=True)
    assert calls == []
    cpu.ThreadShare([(0, torch.get_num_threads() + 1)], adapt=True)
    assert calls == [torch.get_num_threads() + 1]


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc/stat")
def test_a_run_lowers_its_threads_when_a_neighbour_takes_the_cores(monkeypatch):
    """A neighbour that starts mid-run: the run goes down to one thread and lists the change,
    which its checkpoints keep."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu.ThreadShare, "CHECK_S", 0.5)
    before = torch.get_num_threads()
    busy = []
    try:
        share = cpu.ThreadShare([(0, 2)], adapt=True)
        assert torch.get_num_threads() == 2
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
        time.sleep(0.8)
        share.check(10)
        assert share.changes == [(0, 2), (10, 1)] and torch.get_num_threads() == 1
        fixed = cpu.ThreadShare([(0, 2)], adapt=False)  # on a GPU: never changed
        time.sleep(0.8)
        fixed.check(10)
        assert fixed.changes == [(0, 2)] and torch.get_num_threads() == 2
    finally:
        for p in busy:
            p.kill()
            p.wait()
        torch.set_num_threads(before)
