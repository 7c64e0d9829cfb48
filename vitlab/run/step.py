"""The training step: a run's budget, optimizer and schedule, mixed precision, and one optimisation
step. Shared by training (vitlab.run.train), the memory check (vitlab.run.memory) and the cost estimate
(vitlab.study.cost), so that what they measure is what a run does."""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from timm.optim import create_optimizer_v2, param_groups_weight_decay
from torch import nn

from vitlab.run.config import RunConfig
from vitlab.run.models import position_parameters


def schedule(total_steps: int, warmup_steps: int, decay: str = "cosine"):
    """Linear warm-up, then cosine or linear decay to zero: a multiplier of the base lr per step."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1 + math.cos(math.pi * progress)) if decay == "cosine" else 1 - progress
    return factor


def budget(cfg: RunConfig) -> tuple[int, int, int]:
    """A run's batch size, steps per epoch and total training steps."""
    batch_size = min(cfg.batch_size, cfg.train_size)
    steps_per_epoch = cfg.train_size // batch_size  # drop the ragged last batch
    return batch_size, steps_per_epoch, cfg.steps if cfg.steps is not None else cfg.epochs * steps_per_epoch


def make_optimizer(model: nn.Module, cfg: RunConfig, total_steps: int):
    """timm's AdamW (betas 0.9, 0.999) or SGD with momentum 0.9; weight decay spares biases, norms,
    the class token and every kind of position embedding."""
    kwargs = {"momentum": 0.9} if cfg.optimizer == "sgd" else {"betas": (0.9, 0.999)}
    exempt = set(getattr(model, "no_weight_decay", set)()) | position_parameters(model)
    optimizer = create_optimizer_v2(model, cfg.optimizer if cfg.optimizer == "adamw" else "momentum",
                                    lr=cfg.lr, weight_decay=cfg.weight_decay, **kwargs,
                                    param_group_fn=lambda m: param_groups_weight_decay(
                                        m, cfg.weight_decay, no_weight_decay_list=exempt))
    warmup_steps = round(cfg.warmup * total_steps)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(total_steps, warmup_steps, cfg.decay))


class MixedPrecision:
    """torch.autocast at the run's precision and, for fp16, a GradScaler.

    Not Accelerator(mixed_precision=...): Accelerate fixes the precision once per process,
    and a sweep's reused kernel trains runs of different precisions one after another.
    """

    def __init__(self, precision: str, device: torch.device):
        self.dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype) if self.dtype else contextlib.nullcontext()


def step(model, optimizer, scheduler, accelerator: Accelerator, x: torch.Tensor, y: torch.Tensor,
         label_smoothing: float, grad_accum: int = 1, precision: MixedPrecision | None = None
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on a normalised batch, in grad_accum micro-batches; the logits and
    the mean loss, on the device. Gradients are synchronised across processes once per step."""
    precision = precision or MixedPrecision("fp32", x.device)
    scaler = precision.scaler
    optimizer.zero_grad(set_to_none=True)
    logits, losses = [], []
    for i, (xs, ys) in enumerate(zip(x.chunk(grad_accum), y.chunk(grad_accum))):
        sync = contextlib.nullcontext() if i == grad_accum - 1 else accelerator.no_sync(model)
        with sync:
            with precision.autocast():
                out = model(xs)
            loss = F.cross_entropy(out.float(), ys, label_smoothing=label_smoothing)
            accelerator.backward(scaler.scale(loss / grad_accum) if scaler else loss / grad_accum)
        logits.append(out.detach())
        losses.append(loss.detach())
    if scaler:
        scaler.unscale_(optimizer)
    accelerator.clip_grad_norm_(model.parameters(), 1.0)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    return torch.cat(logits), torch.stack(losses).mean()
