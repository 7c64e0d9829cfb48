"""Training throughput when the CPU is shared: alone, two at once, and beside a busy neighbour.

The quickstart's ViT (the default recipe: depth 4, width 64, patch 7, batch 64, mnist5k) trained
for a fixed number of steps, each training in a fresh process, timed:
  (i) alone, (ii) two at once, (iii) beside a neighbour: another training process with torch's
  defaults (a bare loop of the same model, left running for the whole measurement);
as vitlab runs it (`train.fit` in a process that imports vitlab first, as `vitlab train`, the
sweep's kernels and the train notebook do) and as a bare timm loop with torch's defaults (a
process that never imports vitlab). Prints images/s for each, `shared_vs_alone` (the combined
images/s of two vitlab runs at once over one alone) and `neighbour_vs_bare` (vitlab beside the
neighbour over the bare loop beside the same neighbour).

    python benchmarks/shared_cpu.py --json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

STEPS = 300
BATCH = 64


def vitlab_worker(steps: int) -> tuple[float, int]:
    from vitlab import train
    from vitlab.config import RunConfig
    from vitlab.models import build_model

    cfg = RunConfig.from_dict({"steps": steps})
    result = train.fit(cfg, build_model(cfg), progress=False)
    return result.images_per_s, result.threads


def bare_worker(steps: int) -> tuple[float, int]:
    """The same model and batch with torch's defaults; steps <= 0 runs until killed."""
    import torch
    import torch.nn.functional as F
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=64, depth=4,
                              num_heads=4, mlp_ratio=2.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    x, y = torch.randn(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))
    started, done = time.perf_counter(), 0
    while steps <= 0 or done < steps:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done += 1
    return done * BATCH / (time.perf_counter() - started), torch.get_num_threads()


def start(kind: str, steps: int) -> subprocess.Popen:
    # A clean environment for the bare loop: no thread or wait-policy settings inherited.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "MKL_"))}
    return subprocess.Popen([sys.executable, __file__, "--worker", kind, "--steps", str(steps)], env=env,
                            stdout=subprocess.PIPE, text=True)


def rates(kind: str, copies: int, steps: int, neighbour: bool = False) -> list[tuple[float, int]]:
    """(images/s, threads) of `copies` trainings started together, beside a neighbour or not."""
    busy = start("bare", 0) if neighbour else None
    try:
        if busy is not None:
            time.sleep(10)  # the neighbour past its imports and training
        procs = [start(kind, steps) for _ in range(copies)]
        return [json.loads(p.communicate()[0].splitlines()[-1]) for p in procs]
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS, help="training steps per measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--worker", choices=("vitlab", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(vitlab_worker(args.steps) if args.worker == "vitlab" else bare_worker(args.steps)))
        return
    figures: dict[str, float | int] = {"cores": os.cpu_count() or 1, "steps": args.steps}
    for kind in ("vitlab", "bare"):
        for case, copies, neighbour in (("alone", 1, False), ("two_at_once", 2, False), ("beside_neighbour", 1, True)):
            measured = rates(kind, copies, args.steps, neighbour)
            figures[f"{kind}_{case}"] = [round(rate, 1) for rate, _ in measured]
            figures[f"{kind}_{case}_threads"] = [threads for _, threads in measured]
    figures["shared_vs_alone"] = round(sum(figures["vitlab_two_at_once"]) / figures["vitlab_alone"][0], 3)
    figures["neighbour_vs_bare"] = round(figures["vitlab_beside_neighbour"][0] / figures["bare_beside_neighbour"][0], 2)
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name}: {value}")


if __name__ == "__main__":
    main()
