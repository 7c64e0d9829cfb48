"""Training throughput of vitlab against a bare timm + torch loop, and model FLOPs utilisation.

A ViT-Ti-shaped model (depth 12, width 192, 3 heads, patch 4) on 32 px images, batch 128,
fp32, on this machine's device, with the default recipe's random crops (and, reported beside
it, without them). vitlab's rate is taken from two real runs of train.fit that differ only in
their step budget, so start-up and the first steps cancel out; the bare loop (timm's
VisionTransformer, torch AdamW, cross-entropy, nothing else) is timed after warm-up steps in
the same process, which has vitlab's CPU settings (vitlab.run.cpu: denormals flushed, freed memory
kept) as vitlab's runs do: that is the baseline `ratio_vs_bare` compares with. The bare loop as
written, in a fresh process without vitlab, is reported beside it.

MFU is training FLOP/s (3 x forward FLOPs x images/s) over the fp32 matmul rate measured here
(2048 x 2048, best of 10). `gemms_only_mfu` is its ceiling for this model and batch: the MFU of
a step that did nothing but its linear layers' matrix products.

    python benchmarks/train_throughput.py --json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from timm.models.vision_transformer import VisionTransformer

SHAPE = dict(depth=12, width=192, heads=3, mlp_dim=768, patch_size=4, image_size=32, batch_size=128,
             dataset="mnist5k", train_size=3500)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def vitlab_rate(warmup: int, steps: int, augment: bool = True) -> float:
    from vitlab.run import train
    from vitlab.run.config import RunConfig
    from vitlab.run.models import build_model

    times = []
    for budget in (warmup, warmup + steps):
        cfg = RunConfig.from_dict({**SHAPE, "steps": budget, "augment": augment})
        result = train.fit(cfg, build_model(cfg), progress=False)
        times.append(result.train_time_s)
    return steps * SHAPE["batch_size"] / (times[1] - times[0])


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


def gemm_seconds_per_step(device, repeats: int = 3) -> float:
    """The time one training step spends in its linear layers' matrix products alone (forward,
    input gradient, weight gradient of qkv, proj, fc1, fc2 in every block), at this batch:
    what a loop with no other cost would take, so MFU's ceiling here."""
    tokens = SHAPE["batch_size"] * ((SHAPE["image_size"] // SHAPE["patch_size"]) ** 2 + 1)
    d, h = SHAPE["width"], SHAPE["mlp_dim"]
    shapes = []
    for n_out, n_in in ((3 * d, d), (d, d), (h, d), (d, h)):
        shapes += [(tokens, n_in, n_out), (tokens, n_out, n_in), (n_out, tokens, n_in)]
    operands = [(torch.randn(m, k, device=device), torch.randn(k, n, device=device), torch.empty(m, n, device=device))
                for m, k, n in shapes]
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        started = time.perf_counter()
        for _ in range(SHAPE["depth"]):
            for a, b, out in operands:
                torch.mm(a, b, out=out)
        sync(device)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--bare-only", action="store_true", help="print the bare loop's images/s and stop")
    args = parser.parse_args()

    device = Accelerator().device
    if args.bare_only:  # before anything imports vitlab
        print(bare_rate(device, args.warmup, args.steps))
        return
    as_written = subprocess.run([sys.executable, __file__, "--bare-only", "--steps", str(args.steps),
                                 "--warmup", str(args.warmup)], capture_output=True, text=True, check=True)
    bare_as_written = float(as_written.stdout)

    from vitlab.run.config import RunConfig
    from vitlab.run.flops import TRAIN_FLOPS_PER_FORWARD, forward_flops
    from vitlab.run.models import build_model

    ours = vitlab_rate(args.warmup, args.steps)  # the default recipe: random crops on
    plain = vitlab_rate(args.warmup, args.steps, augment=False)
    bare = bare_rate(device, args.warmup, args.steps)
    cfg = RunConfig.from_dict(SHAPE)
    flops = forward_flops(build_model(cfg), (1, 32, 32))
    peak = matmul_rate(device)
    train_flops_per_image = TRAIN_FLOPS_PER_FORWARD * flops
    figures = {
        "device": str(device), "threads": torch.get_num_threads(),
        "vitlab_images_per_s": round(ours, 1), "bare_images_per_s": round(bare, 1),
        "bare_as_written_images_per_s": round(bare_as_written, 1),
        "ratio_vs_bare": round(ours / bare, 3),
        "vitlab_no_augment_images_per_s": round(plain, 1), "ratio_vs_bare_no_augment": round(plain / bare, 3),
        "forward_gflops_per_image": round(flops / 1e9, 4),
        "matmul_gflop_per_s": round(peak / 1e9, 1),
        "mfu": round(train_flops_per_image * ours / peak, 3),
        "bare_mfu": round(train_flops_per_image * bare / peak, 3),
        "gemms_only_mfu": round(train_flops_per_image * SHAPE["batch_size"] / gemm_seconds_per_step(device) / peak, 3),
    }
    print(json.dumps(figures) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
