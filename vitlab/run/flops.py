"""Compute accounting: parameters and FLOPs (2 x multiply-accumulates)."""
from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# Forward + backward costs three forwards: the backward pass computes gradients
# for both activations and weights, each as costly as the forward matmuls.
TRAIN_FLOPS_PER_FORWARD = 3


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def _unfused_attention(model: nn.Module):
    # FlopCounterMode has no formula for the CPU flash-attention kernel, so timm's
    # attention is counted through its explicit q @ k^T and attn @ v matmuls.
    fused = [m for m in model.modules() if getattr(m, "fused_attn", False)]
    for m in fused:
        m.fused_attn = False
    try:
        yield
    finally:
        for m in fused:
            m.fused_attn = True


def forward_flops(model: nn.Module, image_shape: tuple[int, int, int]) -> int:
    """Forward FLOPs for one image of shape (C, H, W), attention included."""
    param = next(model.parameters())
    x = torch.zeros((1, *image_shape), device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    with _unfused_attention(model), torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops())
