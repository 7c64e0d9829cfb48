"""A sweep's cost before it runs: params, FLOPs and wall time from a short calibration here, and
the dry run that prints it (`vitlab sweep --dry-run`)."""
from __future__ import annotations

import json
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from vitlab.run import cpu, datasets
from vitlab.run.config import ConfigError, RunConfig
from vitlab.run.flops import TRAIN_FLOPS_PER_FORWARD, forward_flops, n_params
from vitlab.run.models import build_model
from vitlab.run.step import budget, make_optimizer, step
from vitlab.study import results

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


# Each shape's calibration, kept for the process: a notebook or a test that estimates several
# plans times a shape they share once.
_TIMED: dict[tuple, tuple[int, int, float]] = {}


def estimate(runs, accelerator: Accelerator | None = None, progress: bool = True) -> list[Cost]:
    """Time a few real training steps of each distinct model shape, on random images, and extrapolate."""
    cpu.configure()  # timed with the settings a run trains with
    accelerator = accelerator or Accelerator()
    out = []
    for cfg in tqdm(runs, desc="calibrating", unit="run", disable=not progress):
        batch_size, _, total_steps = budget(cfg)
        key = (json.dumps(cfg.arch(), sort_keys=True), cfg.dataset, cfg.input_size, batch_size,
               str(accelerator.device), torch.get_num_threads())
        if key not in _TIMED:
            _TIMED[key] = _calibrate(cfg, batch_size, accelerator)
        params, flops, step_s = _TIMED[key]
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


def dry_run(plan, runs, workers: int, results_dir: Path) -> int:
    """Print each run still to train with its parameters, size, compute, peak memory and estimated
    time, and the runs already recorded in results_dir (a rerun skips them); train nothing.
    Returns 1 where the real sweep would refuse: a dataset missing, a run that cannot fit."""
    import pandas as pd

    from vitlab.run import memory
    from vitlab.study import plans

    recorded = [cfg for cfg in runs if results.read_record(results_dir, cfg.run_id, "ignore")]
    todo = [cfg for cfg in runs if cfg not in recorded]
    counts = f"{len(runs)} runs, {len(recorded)} recorded in {results_dir}, {len(todo)} to train"
    if not todo:
        print(f"{plan.name}: {counts}: nothing to train")
        return 0
    peaks = [memory.estimate(cfg) for cfg in todo]
    mark = cpu.usage_mark()
    estimates = estimate(todo)
    others = cpu.others_busy(mark)
    configs = [cfg.to_dict() for cfg in todo]
    usual = {k: Counter(json.dumps(c[k]) for c in configs).most_common(1)[0][0] for k in configs[0]}
    table = pd.DataFrame([{"run_id": cfg.run_id, "params": f"{e.n_params / 1e6:.3g}M",
                           "GFLOPs/img": f"{e.flops_per_image / 1e9:.3g}", "steps": e.train_steps,
                           "train PFLOPs": f"{e.train_flops / 1e15:.3g}", "est. time": _duration(e.seconds),
                           "peak memory": _size(m.peak) + ("" if m.fits() else " (!)")}
                          for cfg, e, m in zip(todo, estimates, peaks)]).to_string(index=False).splitlines()
    print("usual values: " + ", ".join(f"{k}={json.loads(v)}" for k, v in usual.items() if v != "null"))
    print(table[0] + "  differs from the usual values")
    for line, values in zip(table[1:], configs):
        print(line + "  " + (", ".join(f"{k}={v}" for k, v in values.items()
                                       if json.dumps(v) != usual[k] and v is not None) or "-"))
    total = STARTUP_S + sum(e.seconds for e in estimates) / workers
    print(f"{plan.name}: {counts}: {sum(e.train_flops for e in estimates) / 1e15:.3g} train PFLOPs, "
          f"estimated {_duration(total)} on this machine"
          + (f" with {workers} workers" if workers > 1 else "")
          + " (training calibrated here)")
    if others is not None and others >= BUSY_CORES:
        print(f"note: other processes kept {others:.1f} of {os.cpu_count()} cores busy while calibrating; "
              "on a quieter machine runs will likely be faster than estimated")
    device = memory.default_device()
    top = max(peaks, key=lambda m: m.peak)
    print(f"peak memory: up to {_size(top.peak)} of the {_size(top.capacity)} of {memory.device_name(device)} "
          f"(run {top.run_id}: weights, gradients and optimizer state {_size(top.training - top.per_micro_batch)}, "
          f"activations {_size(top.per_micro_batch)} at {top.micro_batch} images a micro-batch, evaluation "
          f"{_size(top.evaluation)}, images held {_size(top.data)}, the process {_size(top.base)})")
    refused = [f"refused: {line}" for line in plans.missing_data(plan, todo)]
    for cfg in todo:
        try:
            memory.check(cfg, device)
        except ConfigError as e:
            refused.append(f"refused: {e}")
    for line in refused:
        print(line)
    return 1 if refused else 0


# Other processes' use, in cores, above which a dry run says its calibration was on a busy machine.
BUSY_CORES = 0.5


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 / 10 else f"{n / 2**20:.0f} MiB"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
