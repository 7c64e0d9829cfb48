"""Training throughput of vitlab against a bare timm + torch loop, and model FLOPs utilisation.

A ViT-Ti-shaped model (depth 12, width 192, 3 heads, patch 4) on 32 px images, batch 128,
fp32, on this machine's device, with the default recipe's random crops (and, reported beside it,
without them). vitlab's rate is taken from two real runs of train.fit that
differ only in their step budget, so start-up and the first steps cancel out; the bare loop
(timm's VisionTransformer, torch AdamW, cross-entropy, nothing else) is timed after warm-up
steps in the same process. MFU is training FLOP/s (3 x forward FLOPs x images/s) over the
fp32 matmul rate measured here.

    python benchmarks/train_throughput.py --json
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from vitlab import train
from vitlab.config import RunConfig
from vitlab.flops import TRAIN_FLOPS_PER_FORWARD, forward_flops
from vitlab.models import build_model

SHAPE = dict(depth=12, width=192, heads=3, mlp_dim=768, patch_size=4, image_size=32, batch_size=128,
             dataset="mnist5k", train_size=4000)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def vitlab_rate(warmup: int, steps: int, augment: bool = True) -> tuple[float, str]:
    times = []
    for budget in (warmup, warmup + steps):
        cfg = RunConfig.from_dict({**SHAPE, "steps": budget, "augment": augment})
        result = train.fit(cfg, build_model(cfg), progress=False)
        times.append(result.train_time_s)
    return steps * SHAPE["batch_size"] / (times[1] - times[0]), result.device


def bare_rate(device, warmup: int, steps: int) -> float:
    torch.manual_seed(0)
    model = VisionTransformer(img_size=32, patch_size=4, in_chans=1, num_classes=10, embed_dim=192, depth=12,
                              num_heads=3, mlp_ratio=4.0).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    x = torch.randn(SHAPE["batch_size"], 1, 32, 32, device=device)
    y = torch.randint(0, 10, (SHAPE["batch_size"],), device=device)
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            started = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return steps * SHAPE["batch_size"] / (time.perf_counter() - started)


def matmul_rate(device, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        started = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - started)
    return 2 * n ** 3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    ours, device_name = vitlab_rate(args.warmup, args.steps)  # the default recipe: random crops on
    plain, _ = vitlab_rate(args.warmup, args.steps, augment=False)
    device = torch.device(device_name)
    bare = bare_rate(device, args.warmup, args.steps)
    cfg = RunConfig.from_dict(SHAPE)
    flops = forward_flops(build_model(cfg), (1, 32, 32))
    peak = matmul_rate(device)
    figures = {
        "device": device_name, "threads": torch.get_num_threads(),
        "vitlab_images_per_s": round(ours, 1), "bare_images_per_s": round(bare, 1),
        "ratio_vs_bare": round(ours / bare, 3),
        "vitlab_no_augment_images_per_s": round(plain, 1), "ratio_vs_bare_no_augment": round(plain / bare, 3),
        "forward_gflops_per_image": round(flops / 1e9, 4),
        "matmul_gflop_per_s": round(peak / 1e9, 1),
        "mfu": round(TRAIN_FLOPS_PER_FORWARD * flops * ours / peak, 3),
        "bare_mfu": round(TRAIN_FLOPS_PER_FORWARD * flops * bare / peak, 3),
    }
    print(json.dumps(figures) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
