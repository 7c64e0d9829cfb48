"""The training engine: one run on Accelerate, data held on the device."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from timm.optim import create_optimizer_v2
from torch import nn
from tqdm.auto import tqdm

from vitlab import data
from vitlab import evaluate as evaluation
from vitlab.config import RunConfig
from vitlab.flops import TRAIN_FLOPS_PER_FORWARD, forward_flops, n_params


@dataclass
class TrainResult:
    status: str  # "ok" or "diverged"
    test_accuracy: float | None
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
    history: list[dict] = field(default_factory=list)  # one row per epoch
    transfer: dict = field(default_factory=dict)  # few-shot and linear-probe accuracies
    error: str | None = None


def schedule(total_steps: int, warmup_steps: int):
    """Linear warm-up, then cosine decay to zero: a multiplier of the base lr per step."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Per-image random crop after zero padding, done on x's device by gathering."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b, 1, 1, 1), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b, 1, 1, 1), device=x.device, generator=generator)
    rows = dy + torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = dx + torch.arange(w, device=x.device).view(1, 1, 1, w)
    batch = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch, chan, rows, cols]


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, split: data.Split,
             batch_size: int = 500) -> float:
    """Top-1 accuracy (a fraction) of model on uint8 images already on its device."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=images.device)
    for i in range(0, len(images), batch_size):
        logits = model(data.normalise(images[i:i + batch_size], split))
        correct += (logits.argmax(1) == labels[i:i + batch_size]).sum()
    model.train(was_training)
    return correct.item() / len(images)


def budget(cfg: RunConfig) -> tuple[int, int, int]:
    """A run's batch size, steps per epoch and total training steps."""
    batch_size = min(cfg.batch_size, cfg.train_size)
    steps_per_epoch = cfg.train_size // batch_size  # drop the ragged last batch
    return batch_size, steps_per_epoch, cfg.steps if cfg.steps is not None else cfg.epochs * steps_per_epoch


def make_optimizer(model: nn.Module, cfg: RunConfig, total_steps: int):
    optimizer = create_optimizer_v2(model, "adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup_steps = round(cfg.warmup * total_steps)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(total_steps, warmup_steps))


def step(model, optimizer, scheduler, accelerator: Accelerator, x: torch.Tensor, y: torch.Tensor,
         label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on a normalised batch; the logits and the loss, on the device."""
    logits = model(x)
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    accelerator.backward(loss)
    accelerator.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    return logits, loss


def fit(cfg: RunConfig, model: nn.Module, progress: bool = True,
        accelerator: Accelerator | None = None) -> TrainResult:
    """Train model as cfg says, then evaluate it on the dataset's fixed test split."""
    started = time.perf_counter()
    set_seed(cfg.seed)
    accelerator = accelerator or Accelerator()
    device = accelerator.device
    spec = data.DATASETS[cfg.dataset]
    split = data.load(cfg.dataset)
    idx = torch.from_numpy(data.subset_indices(split.train_labels, cfg.train_size, cfg.seed))
    x_train = split.train_images[idx].to(device)
    y_train = split.train_labels[idx].to(device)
    x_test, y_test = split.test_images.to(device), split.test_labels.to(device)
    if cfg.input_size != spec.image_size:  # resized once, not per step
        x_train, x_test = (data.resize(x, cfg.input_size) for x in (x_train, x_test))

    flops_per_image = forward_flops(model, (spec.channels, cfg.input_size, cfg.input_size))
    batch_size, steps_per_epoch, total_steps = budget(cfg)
    optimizer, scheduler = make_optimizer(model, cfg, total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    pad = max(1, cfg.input_size // 14)

    history, status, steps = [], "ok", 0
    model.train()
    bar = tqdm(total=total_steps, desc=f"{cfg.model} {cfg.run_id}", unit="step",
               disable=not progress or not accelerator.is_local_main_process)
    train_started = time.perf_counter()
    for epoch in range(math.ceil(total_steps / steps_per_epoch)):
        # Per-epoch sums stay on the device: one host sync per epoch, not per step.
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        perm = torch.randperm(cfg.train_size, device=device, generator=generator)
        epoch_steps = min(steps_per_epoch, total_steps - steps)
        for s in range(epoch_steps):
            b = perm[s * batch_size:(s + 1) * batch_size]
            xb, yb = x_train[b], y_train[b]
            if cfg.augment:
                xb = random_crop(xb, pad, generator)
            logits, loss = step(model, optimizer, scheduler, accelerator,
                                data.normalise(xb, split), yb, cfg.label_smoothing)
            loss_sum += loss.detach()
            correct += (logits.argmax(1) == yb).sum()
            steps += 1
            bar.update()
        epoch_loss = loss_sum.item() / epoch_steps
        elapsed = time.perf_counter() - train_started
        history.append({"epoch": epoch + 1, "train_loss": epoch_loss,
                        "train_accuracy": correct.item() / (epoch_steps * batch_size),
                        "images_per_s": steps * batch_size / elapsed})
        bar.set_postfix(loss=f"{epoch_loss:.3f}", acc=f"{history[-1]['train_accuracy']:.3f}",
                        img_s=f"{history[-1]['images_per_s']:.0f}")
        if not math.isfinite(epoch_loss):
            status = "diverged"
            break
    bar.close()
    train_time = time.perf_counter() - train_started
    images_seen = steps * batch_size
    test_accuracy = evaluate(model, x_test, y_test, split) if status == "ok" else None
    transfer = evaluation.transfer_metrics(cfg, accelerator.unwrap_model(model), device) if status == "ok" else {}
    return TrainResult(
        status=status, test_accuracy=test_accuracy,
        train_loss=history[-1]["train_loss"] if history else None,
        n_params=n_params(model), flops_per_image=flops_per_image,
        train_flops=TRAIN_FLOPS_PER_FORWARD * flops_per_image * images_seen,
        train_steps=steps, images_seen=images_seen, train_time_s=train_time,
        wall_time_s=time.perf_counter() - started,
        images_per_s=images_seen / train_time if train_time > 0 else 0.0,
        device=str(device), history=history, transfer=transfer,
        error=f"non-finite training loss in epoch {len(history)}" if status == "diverged" else None)
