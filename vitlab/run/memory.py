"""A run's peak memory on its device, known before it trains, and the refusal of a run that cannot fit.

The training step and evaluation are replayed on fake tensors (torch's FakeTensorMode: shapes,
no storage, no arithmetic) under PyTorch's MemTracker, which counts every tensor alive at each
moment: weights, gradients, optimizer state, activations saved for the backward pass and the
temporaries of each op, at the run's real micro-batch, precision and input size (1-8 s for a
ViT, nothing extrapolated from a small batch). To that come the images a run holds (uint8, at their stored size) and the process itself.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

from vitlab.run import data, datasets
from vitlab.run.config import ConfigError, RunConfig
from vitlab.run.data import eval_batch
from vitlab.run.models import build_model
from vitlab.run.step import MixedPrecision, budget, make_optimizer, step

GiB = 2 ** 30
# What a CUDA process holds on its GPU beyond its tensors (the context and cuBLAS/cuDNN
# workspaces); not measured here (no GPU was lent), the usual size on recent cards.
CUDA_CONTEXT_BYTES = 0.6 * GiB
# The process on a CPU: Python with torch, timm, Accelerate and vitlab loaded. Measured once,
# when this module is first imported (they are loaded by then), so a torch build that maps
# more libraries counts what it maps (the CUDA build: about 1 GB).
_PROCESS_BYTES = psutil.Process().memory_info().rss


@dataclass(frozen=True)
class MemoryEstimate:
    run_id: str
    device: str
    capacity: int  # bytes the device has
    training: int  # tensors at the peak of a training step: weights, gradients, optimizer state, activations
    per_micro_batch: int  # of which activations and temporaries, that shrink with a smaller micro-batch
    evaluation: int  # tensors at the peak of an evaluation batch (the optimizer state still held)
    data: int  # images held while it trains and evaluates
    base: int  # the process (CPU) or the CUDA context (GPU)
    micro_batch: int

    @property
    def tensors(self) -> int:
        return max(self.training, self.evaluation)

    @property
    def peak(self) -> int:
        return self.base + self.data + self.tensors

    def fits(self) -> bool:
        return self.peak <= self.capacity


def reset_peak(device: torch.device) -> None:
    """Start measuring a run's peak memory from now (see measured_peak)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: writing 5 resets the process's peak resident memory (VmHWM) to its current size
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # elsewhere the process's lifetime peak stands in


def measured_peak(device: torch.device) -> int:
    """Bytes at the peak since reset_peak: what the CUDA allocator reserved on a GPU; the process's
    peak resident memory on a CPU (it includes what a reused kernel kept from earlier runs)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_reserved(device)
    try:
        status = Path("/proc/self/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) * 1024
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def default_device() -> torch.device:
    """Where a run trains: the GPU when there is one (as Accelerate chooses), else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def capacity(device: torch.device) -> int:
    """Bytes the device has: VITLAB_DEVICE_MEMORY_GIB when set (a share of a machine or GPU that
    others use too), else the GPU's memory or the machine's."""
    if "VITLAB_DEVICE_MEMORY_GIB" in os.environ:
        return int(float(os.environ["VITLAB_DEVICE_MEMORY_GIB"]) * GiB)
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return psutil.virtual_memory().total


def device_name(device: torch.device) -> str:
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "this machine's memory"


def held_bytes(cfg: RunConfig, device: torch.device) -> int:
    """Images a run holds on its device: its training subset, validation and test splits as uint8 at
    their stored size, and its transfer dataset while evaluating; on a CPU also the whole loaded
    dataset (kept for the next run). Streamed datasets hold a few batches."""
    spec = datasets.spec(cfg.dataset)
    if spec.streams:
        return 0
    image = spec.channels * spec.image_size ** 2
    on_device = (cfg.train_size + spec.n_val + spec.test_size) * image
    transfer = datasets.spec(spec.transfer) if spec.transfer else None
    if transfer is not None and transfer.channels == spec.channels and not transfer.streams:
        try:
            transfer.check_available()
            on_device += (transfer.train_pool + transfer.test_size) * transfer.channels * transfer.image_size ** 2
        except datasets.DatasetMissing:
            pass
    if device.type == "cpu":  # the loaded dataset stays in datasets.load_splits' cache beside the run's copy
        on_device += (spec.train_pool + spec.test_size) * image
    return on_device


@functools.lru_cache(maxsize=64)
def _tracked_peak(cfg: RunConfig, device: torch.device) -> tuple[int, int, int]:
    """Peak bytes of a training step at cfg.batch_size images, the part of it that scales with the
    batch, and the peak of an evaluation batch after it: replayed on fake tensors on device."""
    from accelerate import Accelerator
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    spec = datasets.spec(cfg.dataset)
    with torch.device("meta"):  # shapes only: no initialisation to run
        model = build_model(cfg)
    precision = MixedPrecision(cfg.precision, device)
    stats = types.SimpleNamespace(mean=0.5, std=0.25)
    size, stored, micro_batch = cfg.input_size, spec.image_size, cfg.batch_size

    def prepared(n: int) -> torch.Tensor:
        """n images as the run feeds them: uint8 at their stored size, resized, normalised."""
        x = torch.empty(n, spec.channels, stored, stored, dtype=torch.uint8, device=device)
        return data.normalise(data.resize(x, size) if size != stored else x, stats)

    with FakeTensorMode(allow_non_fake_inputs=True):
        model = model.to_empty(device=device)
        for module in model.modules():  # MemTracker hooks every parameter's gradient: frozen ones
            for name, p in list(module._parameters.items()):  # (fixed sin-cos embeddings) count as buffers
                if p is not None and not p.requires_grad:
                    del module._parameters[name]
                    module.register_buffer(name, p.detach())
        optimizer, scheduler = make_optimizer(model, cfg, 2)
        accelerator = Accelerator()  # the process's own: its backward and gradient clipping
        y = torch.zeros(micro_batch, dtype=torch.long, device=device)

        def train_step():
            step(model, optimizer, scheduler, accelerator, prepared(micro_batch), y, 0.0, 1, precision)

        train_step()  # creates the optimizer state, which the tracked step then carries

        def peak(run) -> dict:
            tracker = MemTracker()
            tracker.track_external(model, optimizer, y)
            with tracker:
                run()
            return {getattr(k, "value", k): v for k, v in next(iter(tracker.get_tracker_snapshot("peak").values())).items()}

        training = peak(train_step)
        model.eval()
        with torch.no_grad():
            evaluation = peak(lambda: model(prepared(min(eval_batch(size), spec.test_size))))
    return training["Total"], training.get("Activation", 0) + training.get("Temp", 0), evaluation["Total"]


def estimate(cfg: RunConfig, device: torch.device | None = None, processes: int = 1) -> MemoryEstimate:
    """The peak memory of one process of a run on device (default: where it would train)."""
    device = device or default_device()
    micro_batch = budget(cfg)[0] // processes // cfg.grad_accum
    training, scaling, evaluation = _tracked_peak(_shape_only(cfg, max(1, micro_batch)), device)
    base = CUDA_CONTEXT_BYTES if device.type == "cuda" else _PROCESS_BYTES
    return MemoryEstimate(cfg.run_id, str(device), capacity(device), training, scaling, evaluation,
                          held_bytes(cfg, device), int(base), micro_batch)


def _shape_only(cfg: RunConfig, micro_batch: int) -> RunConfig:
    """cfg at one micro-batch, with the fields that do not change memory set to one value, so that
    runs differing only there (seed, lr, ...) share one cached estimate."""
    return dataclasses.replace(cfg, seed=0, lr=1e-3, weight_decay=0.0, warmup=0.0, label_smoothing=0.0, epochs=1,
                               steps=None, pretrained=None, train_size=micro_batch, batch_size=micro_batch, grad_accum=1)


@functools.lru_cache(maxsize=256)
def _upper_bound(cfg: RunConfig) -> int:
    """A quick, generous bound on what _tracked_peak measures, from one forward pass on the meta
    device (shapes only, a fraction of a second): weights, gradients, AdamW's two moments and a
    temporary copy, and twice the tensors the forward pass saves for the backward pass (every
    save counted, shared ones again), at the larger of the training and evaluation batch."""
    spec = datasets.spec(cfg.dataset)
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    with torch.device("meta"):
        model = build_model(cfg)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.empty(cfg.batch_size, spec.channels, cfg.input_size, cfg.input_size))
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    per_image = saved / cfg.batch_size
    return 5 * weights + int(2 * per_image * max(cfg.batch_size, eval_batch(cfg.input_size)))


def check(cfg: RunConfig, device: torch.device | None = None, processes: int = 1) -> MemoryEstimate | None:
    """Refuse a run whose peak is more than its device has: ConfigError, one line suggesting
    grad_accum or a smaller batch. Runs far from the limit by a quick bound pass at once (None);
    the others are estimated in full (returned)."""
    device = device or default_device()
    micro_batch = max(1, budget(cfg)[0] // processes // cfg.grad_accum)
    base = CUDA_CONTEXT_BYTES if device.type == "cuda" else _PROCESS_BYTES
    if base + held_bytes(cfg, device) + _upper_bound(_shape_only(cfg, micro_batch)) <= capacity(device) / 2:
        return None
    e = estimate(cfg, device, processes)
    if e.fits():
        return e
    fixed = e.base + e.data + e.training - e.per_micro_batch
    room = e.capacity - fixed
    advice = "a smaller model or input size: its weights and optimizer state alone do not fit"
    if e.base + e.data + e.evaluation > e.capacity:
        advice = "a smaller model or input size: evaluating it does not fit"
    elif room > 0:
        # Activations scale with the micro-batch: the fewest micro-batches per step that fit.
        need = next((k for k in range(cfg.grad_accum + 1, cfg.batch_size + 1)
                     if cfg.batch_size % k == 0 and e.per_micro_batch * cfg.grad_accum / k <= room), None)
        advice = (f"set grad_accum: {need} (same batch, {cfg.batch_size // need} images a micro-batch) "
                  f"or a smaller batch_size" if need else "a smaller batch_size")
    raise ConfigError("batch_size", f"run {cfg.run_id} needs about {e.peak / GiB:.1f} GiB at its peak "
                      f"({e.micro_batch} images a micro-batch), more than the {e.capacity / GiB:.1f} GiB of "
                      f"{device_name(device)}; {advice}")
