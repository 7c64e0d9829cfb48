"""A sweep's cost before it runs: params, FLOPs and wall time from a short calibration here."""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from vitlab.run import cpu, datasets
from vitlab.run.config import RunConfig
from vitlab.run.flops import TRAIN_FLOPS_PER_FORWARD, forward_flops, n_params
from vitlab.run.models import build_model
from vitlab.run.step import budget, make_optimizer, step

# Seconds a sweep spends outside training: once per worker to start a kernel and import
# torch, timm and vitlab; then per run papermill, the namespace reset, data and the record.
# Measured with benchmarks/sweep_overhead.py on 2 CPU cores.
STARTUP_S = 5.0
RUN_OVERHEAD_S = 1.0
# Calibration steps larger than this many FLOPs are timed on a smaller batch and scaled,
# so that a dry run of a paper-scale sweep stays quick on a laptop.
CALIBRATION_FLOPS = 2e11
CALIBRATION_STEPS = 5


@dataclass(frozen=True)
class Cost:
    run_id: str
    n_params: int
    flops_per_image: int
    train_steps: int
    train_flops: int
    seconds_per_step: float
    seconds: float  # the whole run, overhead included


def estimate(runs, accelerator: Accelerator | None = None, progress: bool = True) -> list[Cost]:
    """Time a few real training steps of each distinct model shape, on random images, and extrapolate."""
    cpu.configure()  # timed with the settings a run trains with
    accelerator = accelerator or Accelerator()
    timed: dict[tuple, tuple[int, int, float]] = {}
    out = []
    for cfg in tqdm(runs, desc="calibrating", unit="run", disable=not progress):
        batch_size, _, total_steps = budget(cfg)
        key = (json.dumps(cfg.arch(), sort_keys=True), cfg.dataset, cfg.input_size, batch_size)
        if key not in timed:
            timed[key] = _calibrate(cfg, batch_size, accelerator)
        params, flops, step_s = timed[key]
        spec = datasets.spec(cfg.dataset)
        # Evaluation is a forward pass over the test split: a third of a training step's work per image.
        eval_s = step_s / batch_size / TRAIN_FLOPS_PER_FORWARD * spec.test_size
        out.append(Cost(cfg.run_id, params, flops, total_steps,
                        TRAIN_FLOPS_PER_FORWARD * flops * batch_size * total_steps,
                        step_s, RUN_OVERHEAD_S + step_s * total_steps + eval_s))
    return out


def _calibrate(cfg: RunConfig, batch_size: int, accelerator: Accelerator) -> tuple[int, int, float]:
    """(params, forward FLOPs per image, seconds per training step at batch_size)."""
    spec = datasets.spec(cfg.dataset)
    model = build_model(cfg)
    shape = (spec.channels, cfg.input_size, cfg.input_size)
    flops = forward_flops(model, shape)
    params = n_params(model)
    small = max(1, min(batch_size, int(CALIBRATION_FLOPS / (TRAIN_FLOPS_PER_FORWARD * flops))))
    # Not accelerator.prepare(): the accelerator would keep every calibrated model alive.
    model.to(accelerator.device)
    optimizer, scheduler = make_optimizer(model, cfg, CALIBRATION_STEPS + 1)
    x = torch.randn(small, *shape, device=accelerator.device)
    y = torch.randint(0, spec.num_classes, (small,), device=accelerator.device)
    model.train()
    step(model, optimizer, scheduler, accelerator, x, y, cfg.label_smoothing)  # warm-up
    times = []
    for _ in range(CALIBRATION_STEPS):  # the median step: one slowed by a neighbour does not count
        _sync(accelerator)
        started = time.perf_counter()
        step(model, optimizer, scheduler, accelerator, x, y, cfg.label_smoothing)
        _sync(accelerator)
        times.append(time.perf_counter() - started)
    return params, flops, statistics.median(times) * batch_size / small


def _sync(accelerator: Accelerator) -> None:
    if accelerator.device.type == "cuda":
        torch.cuda.synchronize(accelerator.device)
