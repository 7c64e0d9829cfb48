"""The training engine: one run on Accelerate, from its seed (or its checkpoint) to its result."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import broadcast, set_seed
from torch import nn
from tqdm.auto import tqdm

from vitlab.run import cpu, data, datasets, files, memory, seeds, signals, tracking
from vitlab.run import evaluate as evaluation
from vitlab.run.config import RunConfig
from vitlab.run.families import FAMILIES
from vitlab.run.flops import TRAIN_FLOPS_PER_FORWARD, forward_flops, n_params
from vitlab.run.step import MixedPrecision, budget, make_optimizer, step


@dataclass
class TrainResult:
    status: str  # "ok" or "diverged"
    val_accuracy: float | None  # on the validation split: what every choice between runs uses
    test_accuracy: float | None  # on the test split: what is reported
    train_loss: float | None
    n_params: int
    flops_per_image: int
    train_flops: int
    train_steps: int
    images_seen: int
    train_time_s: float
    wall_time_s: float
    images_per_s: float
    device: str
    peak_memory_gib: float  # measured: see memory.measured_peak
    threads: int  # torch's intra-op threads the run started with (on a CPU: cpu.threads_for_run)
    history: list[dict] = field(default_factory=list)  # one row per epoch
    transfer: dict = field(default_factory=dict)  # few-shot and linear-probe accuracies
    error: str | None = None
    resumed_from_step: int = 0  # the checkpoint's step a resumed run went on from (0: from the start)
    test_correct: np.ndarray | None = None  # per test image, in the split's order: right or not (pairs runs)


CHECKPOINT_FILE = "state.pt"
CHECKPOINT_MINUTES = 10.0
CLOCK_STEPS = 10


def _save_checkpoint(path: Path, accelerator, model, optimizer, scheduler, precision, steps, history, sums,
                     threads) -> None:
    """The run's whole state as tensors and plain values, so that it loads with weights_only=True.

    Every process calls this at the same step. The epoch's running sums are summed over
    processes first; process 0 writes, to a temp file of its own (two claimants of one run,
    a sweep taken over while it still ran, never write one file) renamed into place.
    Written by hand rather than with accelerator.save_state(), which pickles RNG states and
    custom objects that it then loads with weights_only=False.
    """
    if sums is not None:
        sums = [accelerator.reduce(t, "sum").detach().cpu() for t in sums]
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = {"steps": steps, "history": history, "threads": [list(c) for c in threads],
                 "model": accelerator.unwrap_model(model).state_dict(),
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "scaler": precision.scaler.state_dict() if precision.scaler else None, "sums": sums}
        files.write_whole(path, lambda tmp: torch.save(state, tmp))  # a kill mid-write leaves the last one whole
    accelerator.wait_for_everyone()


def _load_checkpoint(path: Path, accelerator, model, optimizer, scheduler, precision):
    state = torch.load(path, map_location="cpu", weights_only=True)
    accelerator.unwrap_model(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if precision.scaler and state["scaler"]:
        precision.scaler.load_state_dict(state["scaler"])
    sums = state["sums"]
    if sums is not None:  # summed over processes when saved: process 0 carries them on, the rest start at 0
        sums = tuple((t if accelerator.is_main_process else torch.zeros_like(t)).to(accelerator.device) for t in sums)
    # (step, threads) changes so far; none in checkpoints before vitlab kept them
    return state["steps"], state["history"], sums, state.get("threads")


def _agreed(accelerator, flag: bool) -> bool:
    """Process 0's flag on every process, so that all take a collective step together."""
    if accelerator.num_processes == 1:
        return flag
    return bool(broadcast(torch.tensor([int(flag)], device=accelerator.device), from_process=0).item())


def fit(cfg: RunConfig, model: nn.Module, progress: bool = True, accelerator: Accelerator | None = None,
        checkpoint_dir: str | Path | None = None, checkpoint_every: int | None = None,
        checkpoint_minutes: float = CHECKPOINT_MINUTES, log_with: str | tuple | None = None,
        log_dir: str | Path | None = None, project: str | None = None) -> TrainResult:
    """Train model as cfg says, then evaluate it on the dataset's fixed validation and test splits.

    With checkpoint_dir, the run's whole state is saved there every checkpoint_every steps
    (else every checkpoint_minutes) and at the end, and a run that finds a checkpoint resumes
    from it to the same result as an uninterrupted run. log_with names trackers (tracking.parse:
    "tensorboard", "wandb", "mlflow", several, or "all"), each logging this run under project
    into log_dir (see vitlab.run.tracking). Under `accelerate launch` each process takes its
    share of every batch.
    """
    started, usage = time.perf_counter(), cpu.usage_mark()
    cpu.configure()  # before this process trains anything (see vitlab.run.cpu)
    set_seed(cfg.seed)
    if accelerator is None:
        log_with = tracking.trackers(log_with, cfg.run_id, project, log_dir or ".") if log_with else None
        accelerator = Accelerator(log_with=log_with)
    device, world = accelerator.device, accelerator.num_processes
    if cfg.batch_size % (world * cfg.grad_accum):
        raise ValueError(f"batch_size: {cfg.batch_size} does not split over {world} processes x "
                         f"{cfg.grad_accum} micro-batches")
    memory.check(cfg, device, world)  # before anything is loaded or trained
    memory.reset_peak(device)
    spec = datasets.spec(cfg.dataset)
    source = data.source(cfg, device)
    flops_per_image = forward_flops(model, (spec.channels, cfg.input_size, cfg.input_size))
    batch_size, _, total_steps = budget(cfg)
    optimizer, scheduler = make_optimizer(model, cfg, total_steps)
    model, optimizer = _prepare(model, optimizer, cfg, accelerator)
    loop = _Loop(cfg, accelerator, model, optimizer, scheduler, MixedPrecision(cfg.precision, device), source,
                 spec.flip, Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir else None, checkpoint_every,
                 checkpoint_minutes)
    steps, history, sums, threads = loop.resume()
    on_cpu = device.type == "cpu"
    share = cpu.ThreadShare(threads or [(steps, cpu.threads_for_run(usage) if on_cpu else torch.get_num_threads())],
                            adapt=on_cpu)
    if log_with:
        accelerator.init_trackers(project or tracking.DEFAULT_PROJECT, config=cfg.to_dict())
    resumed_from = steps
    bar = tqdm(total=total_steps, initial=steps, desc=f"{cfg.model} {cfg.run_id}", unit="step",
               disable=not progress or not accelerator.is_local_main_process)
    train_started = time.perf_counter()
    try:
        # A scheduler's warning stops the run at its next step with its checkpoint saved (signals).
        with signals.caught(enabled=loop.checkpoint is not None) as loop.stop:
            status, steps = loop.train(steps, history, sums, share, bar, log=bool(log_with))
    except BaseException:
        if log_with:  # an open tracker run would stay active in this process (a sweep's reused kernel)
            accelerator.end_training()
        raise
    bar.close()
    train_time = time.perf_counter() - train_started
    ok = status == "ok"
    test_correct = evaluation.correct(model, source.held_batches("test"), source) if ok else None
    result = TrainResult(
        status=status, val_accuracy=evaluation.accuracy(model, source.held_batches("val"), source) if ok else None,
        test_accuracy=float(test_correct.mean()) if ok else None, test_correct=test_correct,
        train_loss=history[-1]["train_loss"] if history else None,
        n_params=n_params(model), flops_per_image=flops_per_image,
        train_flops=TRAIN_FLOPS_PER_FORWARD * flops_per_image * steps * batch_size,
        train_steps=steps, images_seen=steps * batch_size, train_time_s=train_time,
        wall_time_s=time.perf_counter() - started,
        images_per_s=(steps - resumed_from) * batch_size / train_time if train_time > 0 else 0.0,
        device=str(device), peak_memory_gib=memory.measured_peak(device) / memory.GiB,
        threads=share.changes[0][1], history=history,
        transfer=evaluation.transfer_metrics(cfg, accelerator.unwrap_model(model), device) if ok else {},
        resumed_from_step=resumed_from,
        error=None if ok else f"non-finite training loss in epoch {len(history)}")
    if log_with:
        accelerator.log(tracking.final_metrics(result), step=steps)
        accelerator.end_training()
    return result


def _prepare(model: nn.Module, optimizer, cfg: RunConfig, accelerator: Accelerator):
    """The model and optimizer as the device runs them fastest, prepared by Accelerate. The
    scheduler stays unprepared: Accelerate would step it once per process per step, as it takes
    batch_size per process; here batch_size is the global batch."""
    if accelerator.device.type == "cuda":
        # TF32 tensor cores for fp32 matmuls and convolutions (10 mantissa bits, as the paper's TPUs'
        # bf16 passes); channels-last is the layout cuDNN's fastest convolution kernels take.
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        if FAMILIES[cfg.model].channels_last:
            model = model.to(memory_format=torch.channels_last)
    if cfg.compile:
        model.compile()  # in place: the module, its state_dict and checkpoints stay as they are
    return accelerator.prepare(model, optimizer)


@dataclass
class _Loop:
    """The training loop of one run, over what fit prepared for it."""
    cfg: RunConfig
    accelerator: Accelerator
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    precision: MixedPrecision
    source: data.InMemory | data.Streamed
    flip: bool  # photos, not digits: a mirrored 2 is no 2
    checkpoint: Path | None
    checkpoint_every: int | None
    checkpoint_minutes: float
    last_save: float = 0.0  # time.perf_counter() of the last checkpoint
    stop: dict | None = None  # signals.caught's flag: the signal that asks the run to stop, if one came
    crops: torch.Generator | None = None

    def resume(self) -> tuple[int, list[dict], tuple | None, list | None]:
        """Steps done, epochs' history, the running epoch's sums and thread changes: from the
        checkpoint where there is one, else from the start."""
        if self.checkpoint is None or not self.checkpoint.is_file():
            return 0, [], None, None
        return _load_checkpoint(self.checkpoint, self.accelerator, self.model, self.optimizer, self.scheduler,
                                self.precision)

    def train(self, steps: int, history: list[dict], sums, share: cpu.ThreadShare, bar, log: bool
              ) -> tuple[str, int]:
        """Train from step `steps` to the end of the budget; the run's status and its steps."""
        cfg, accelerator, device = self.cfg, self.accelerator, self.accelerator.device
        batch_size, steps_per_epoch, total_steps = budget(cfg)
        world, rank = accelerator.num_processes, accelerator.process_index
        per_process = batch_size // world
        images_before, started = steps * batch_size, time.perf_counter()
        self.last_save = started
        # Every random draw is seeded by (seed, epoch) or (seed, step) in its own stream, so a
        # resumed run draws exactly what the uninterrupted run drew.
        self.crops = torch.Generator(device=device)
        self.model.train()
        # A run resumed from its final checkpoint has no epochs left.
        for epoch in range(steps // steps_per_epoch, math.ceil(total_steps / steps_per_epoch) if steps < total_steps else 0):
            # Per-epoch sums stay on the device: one host sync per epoch, not per step.
            loss_sum, correct = sums or (torch.zeros((), device=device), torch.zeros((), dtype=torch.long, device=device))
            sums = None
            first = epoch * steps_per_epoch
            epoch_steps = min(steps_per_epoch, total_steps - first)
            batches = [slice(s * batch_size + rank * per_process, s * batch_size + (rank + 1) * per_process)
                       for s in range(steps - first, epoch_steps)]
            for xb, yb in self.source.batches(epoch, batches):
                if cfg.augment:
                    xb = self._augment(xb, steps, slice(rank * per_process, (rank + 1) * per_process), batch_size)
                logits, loss = step(self.model, self.optimizer, self.scheduler, accelerator,
                                    data.normalise(xb, self.source), yb, cfg.label_smoothing, cfg.grad_accum,
                                    self.precision)
                loss_sum += loss
                correct += (logits.argmax(1) == yb).sum()
                steps += 1
                bar.update()
                share.check(steps)
                if self._stopping(steps, total_steps):
                    self._save(steps, history, (loss_sum, correct), share.changes)
                    raise signals.Stopped(f"{self.stop['signal'] or 'a signal to process 0'} at step {steps} of "
                                          f"{total_steps}; its checkpoint is saved: run it again to resume")
                if self._due(steps, total_steps):
                    self._save(steps, history, (loss_sum, correct), share.changes)
            loss_sum, correct = accelerator.reduce(loss_sum, "sum"), accelerator.reduce(correct, "sum")
            epoch_loss = loss_sum.item() / (epoch_steps * world)
            history.append({"epoch": epoch + 1, "images_seen": steps * batch_size, "threads": torch.get_num_threads(),
                            "train_loss": epoch_loss,
                            "train_accuracy": correct.item() / (epoch_steps * batch_size),
                            "images_per_s": (steps * batch_size - images_before) / (time.perf_counter() - started)})
            bar.set_postfix(loss=f"{epoch_loss:.3f}", acc=f"{history[-1]['train_accuracy']:.3f}",
                            img_s=f"{history[-1]['images_per_s']:.0f}")
            if log:
                accelerator.log({k: v for k, v in history[-1].items() if k != "epoch"}, step=steps)
            if not math.isfinite(epoch_loss):
                return "diverged", steps
        if self.checkpoint is not None:
            self._save(steps, history, None, share.changes)
        return "ok", steps

    def _augment(self, xb: torch.Tensor, steps: int, part: slice, batch_size: int) -> torch.Tensor:
        """Random crops (and flips of photos), drawn for the whole global batch from the step's own
        stream so that a resumed run, and every process, draws what the uninterrupted run drew."""
        self.crops.manual_seed(seeds.derive(self.cfg.seed, "crops", steps))
        xb = data.random_crop(xb, max(1, self.cfg.input_size // 14), self.crops, part, batch_size)
        if self.flip:
            flip = torch.rand(batch_size, device=self.accelerator.device, generator=self.crops)[part] < 0.5
            xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(-1), xb)
        return xb

    def _due(self, steps: int, total_steps: int) -> bool:
        """A checkpoint by step count, or by process 0's clock every CLOCK_STEPS steps (one
        broadcast, not one per step)."""
        if self.checkpoint is None or steps >= total_steps:
            return False
        if self.checkpoint_every:
            return steps % self.checkpoint_every == 0
        return steps % CLOCK_STEPS == 0 and _agreed(self.accelerator,
                                                    time.perf_counter() - self.last_save > 60 * self.checkpoint_minutes)

    def _stopping(self, steps: int, total_steps: int) -> bool:
        """Whether a signal asked the run to stop: at once alone; with several processes, process
        0's flag every CLOCK_STEPS steps, so that all save together."""
        if self.stop is None or self.checkpoint is None or steps >= total_steps:
            return False
        if self.accelerator.num_processes == 1:
            return self.stop["signal"] is not None
        return steps % CLOCK_STEPS == 0 and _agreed(self.accelerator, self.stop["signal"] is not None)

    def _save(self, steps: int, history: list[dict], sums, threads) -> None:
        _save_checkpoint(self.checkpoint, self.accelerator, self.model, self.optimizer, self.scheduler,
                         self.precision, steps, history, sums, threads)
        self.last_save = time.perf_counter()
