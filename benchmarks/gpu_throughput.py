"""Paper-scale training throughput on a GPU: vitlab against a bare timm + torch loop, MFU, peak memory.

ViT-B/16 at 224 px in bf16 (the paper-scale params files' precision) on random-pixel CIFAR-10 in its
published layout (vitlab.random_data), at the largest batch up to 256 that fits the device. vitlab's
rate comes from two real runs of train.fit that differ only in their step budget, so start-up, the
first steps and evaluation cancel out; the bare loop (timm's VisionTransformer, torch AdamW, bf16
autocast, cross-entropy on a batch already on the device) is timed after warm-up in the same process.

MFU is training FLOP/s (3 x forward FLOPs x images/s) over the device's dense bf16 peak: known
cards by name (below), else --peak in TFLOP/s. Peak memory is what the CUDA allocator reserved
during the vitlab runs. Runs on a CPU too (slowly; use --preset/--image-size/--batch to shrink it).

    python benchmarks/gpu_throughput.py --json
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch
import torch.nn.functional as F

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' datasheets, by a substring of the name.
PEAKS = {"H100 SXM": 989, "H100 80GB HBM3": 989, "H100 NVL": 835, "H100 PCIe": 756, "H100": 756,
         "H200": 989, "GH200": 989, "B200": 2250, "A100": 312, "L40S": 362, "L4": 121, "A10G": 70, "A10": 125,
         "RTX 4090": 165, "RTX 3090": 71}


def device_peak(device: torch.device, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tflops * 1e12 for key, tflops in PEAKS.items() if key in name), None)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fits(cfg, device) -> bool:
    from vitlab.run import memory
    from vitlab.run.config import ConfigError

    try:
        memory.check(cfg, device)
        return True
    except ConfigError:
        return False


def vitlab_rate(values: dict, warmup: int, steps: int, device) -> tuple[float, float]:
    """(images/s, peak GiB) of train.fit between a warmup-step run and a warmup+steps run."""
    from vitlab.run import memory, train
    from vitlab.run.config import RunConfig
    from vitlab.run.models import build_model

    times, peak = [], 0.0
    for budget in (warmup, warmup + steps):
        cfg = RunConfig.from_dict({**values, "steps": budget})
        result = train.fit(cfg, build_model(cfg), progress=False)
        times.append(result.train_time_s)
        peak = max(peak, result.peak_memory_gib if device.type == "cuda" else memory.measured_peak(device) / memory.GiB)
    return steps * values["batch_size"] / (times[1] - times[0]), peak


def bare_rate(values: dict, warmup: int, steps: int, device) -> float:
    from timm.models.vision_transformer import VisionTransformer

    from vitlab.run.presets import PRESETS

    arch = PRESETS[values["preset"]]["arch"]
    torch.manual_seed(0)
    model = VisionTransformer(img_size=values["image_size"], patch_size=arch["patch_size"], num_classes=10,
                              embed_dim=arch["width"], depth=arch["depth"], num_heads=arch["heads"],
                              mlp_ratio=arch["mlp_dim"] / arch["width"]).to(device)
    if values.get("compile"):
        model.compile()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    b = values["batch_size"]
    x = torch.randn(b, 3, values["image_size"], values["image_size"], device=device)
    y = torch.randint(0, 10, (b,), device=device)
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            started = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return steps * b / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="vit-b/16")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, help="batch size (default: the largest of 256, 128, ... that fits)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="torch.compile both loops")
    parser.add_argument("--peak", type=float, help="the device's dense bf16 peak in TFLOP/s (else by card name)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    from vitlab import random_data
    from vitlab.run.config import RunConfig
    from vitlab.run.flops import forward_flops
    from vitlab.run.models import build_model

    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    with tempfile.TemporaryDirectory() as root:
        random_data.write_cifar(root, "cifar10", 10000, 1000)
        os.environ.update(VITLAB_DATA=root, VITLAB_NO_CHECKSUM="1")
        values = {"preset": args.preset, "dataset": "cifar10", "image_size": args.image_size, "train_size": 9000,
                  "precision": "bf16", "augment": True, "compile": args.compile, "lr": 1e-3}
        for batch in [args.batch] if args.batch else (256, 128, 64, 32, 16, 8):
            values["batch_size"] = batch
            if args.batch or fits(RunConfig.from_dict(values), device):
                break
        cfg = RunConfig.from_dict(values)
        flops = forward_flops(build_model(cfg), (3, args.image_size, args.image_size))
        ours, peak_gib = vitlab_rate(values, args.warmup, args.steps, device)
        bare = bare_rate(values, args.warmup, args.steps, device)
    peak = device_peak(device, args.peak)
    out = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "preset": args.preset, "image_size": args.image_size, "batch_size": values["batch_size"],
           "compile": args.compile, "vitlab_images_per_s": round(ours, 1), "bare_images_per_s": round(bare, 1),
           "ratio_vs_bare": round(ours / bare, 3), "train_tflops_per_s": round(3 * flops * ours / 1e12, 2),
           "peak_tflops": peak / 1e12 if peak else None,
           "mfu": round(3 * flops * ours / peak, 3) if peak else None, "peak_memory_gib": round(peak_gib, 2)}
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
