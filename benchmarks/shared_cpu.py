"""Training throughput when the CPU is shared: alone, two at once, and beside a busy neighbour.

The quickstart's ViT (its params file's base: depth 4, width 64, patch 7, batch 64, mnist5k, no
random crops) trained for a fixed number of steps, each training in a fresh process, timed after
its first epoch:
  (i) alone, (ii) two at once, (iii) beside a neighbour, left running for the whole measurement:
  another training process with torch's defaults (a bare loop of the same model), and a plain
  busy loop that holds one core (a process that never waits, as a compile or another program does);
  and two such trainings at once (the issue's "a second sweep and one other training process");
as vitlab runs it (`train.fit` in a process that imports vitlab first, as `vitlab train`, the
sweep's kernels and the train notebook do) and as a bare timm loop with torch's defaults (a
process that never imports vitlab). Prints images/s for each, `shared_vs_alone` (the combined
images/s of two vitlab runs at once over one alone) and, for each neighbour, `*_vs_bare` (vitlab
beside the neighbour over the bare loop beside the same neighbour) and `*_of_one_core` (vitlab
beside the neighbour over vitlab alone at one thread, `vitlab_alone_at_one_thread`: the most a run
can keep beside a neighbour that holds a core, so `*_vs_bare` can exceed the bare loop's collapse
only up to that ceiling over it).

    python benchmarks/shared_cpu.py --json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

STEPS = 300
BATCH = 64
WARMUP = 3500 // BATCH  # one epoch of the quickstart's 3,500 training images
ROOT = Path(__file__).resolve().parents[1]
CASES = (  # name, trainings started together, neighbours running meanwhile
    ("alone", 1, ()), ("two_at_once", 2, ()), ("beside_training", 1, ("bare",)),
    ("beside_busy_loop", 1, ("spin",)), ("beside_two_trainings", 1, ("bare", "bare")))
NEIGHBOURS = [case for case, _, neighbours in CASES if neighbours]


def vitlab_worker(steps: int) -> tuple[float, int]:
    """images/s after the first epoch (start-up and warm-up excluded, as in the bare loop)."""
    import yaml

    from vitlab.run import train
    from vitlab.run.config import RunConfig
    from vitlab.run.models import build_model

    base = yaml.safe_load((ROOT / "params" / "quickstart.yaml").read_text())["base"]
    cfg = RunConfig.from_dict({**base, "steps": steps})
    result = train.fit(cfg, build_model(cfg), progress=False)
    first, last = result.history[0], result.history[-1]
    elapsed = [row["images_seen"] / row["images_per_s"] for row in (first, last)]
    return (last["images_seen"] - first["images_seen"]) / (elapsed[1] - elapsed[0]), result.threads


def bare_worker(steps: int) -> tuple[float, int]:
    """The quickstart's model and batch with torch's defaults, timed after one epoch's worth of
    steps (WARMUP); steps <= 0 runs until killed."""
    import torch
    import torch.nn.functional as F
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=64, depth=4,
                              num_heads=4, mlp_ratio=2.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    x, y = torch.randn(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))
    done = 0
    while steps <= 0 or done < steps:
        if done == WARMUP:
            started = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done += 1
    return (done - WARMUP) * BATCH / (time.perf_counter() - started), torch.get_num_threads()


def spin_worker() -> None:
    """A neighbour that holds one core and never waits."""
    while True:
        pass


def start(kind: str, steps: int, threads: int | None = None) -> subprocess.Popen:
    # A clean environment for the bare loop: no thread or wait-policy settings inherited.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "MKL_"))}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.Popen([sys.executable, __file__, "--worker", kind, "--steps", str(steps)], env=env,
                            stdout=subprocess.PIPE, text=True)


def rates(kind: str, copies: int, steps: int, neighbours: tuple[str, ...] = ()) -> list[tuple[float, int]]:
    """(images/s, threads) of `copies` trainings started together, beside neighbours ("bare",
    "spin") or none."""
    busy = [start(neighbour, 0) for neighbour in neighbours]
    try:
        if busy:
            time.sleep(10 if "bare" in neighbours else 1)  # the neighbours past their imports, training
        procs = [start(kind, steps) for _ in range(copies)]
        return [json.loads(p.communicate()[0].splitlines()[-1]) for p in procs]
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS, help="training steps per measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--worker", choices=("vitlab", "bare", "spin"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "spin":
        spin_worker()
    if args.worker:
        print(json.dumps(vitlab_worker(args.steps) if args.worker == "vitlab" else bare_worker(args.steps)))
        return
    figures: dict[str, float | int] = {"cores": os.cpu_count() or 1, "steps": args.steps}
    for kind in ("vitlab", "bare"):
        for case, copies, neighbours in CASES:
            measured = rates(kind, copies, args.steps, neighbours)
            figures[f"{kind}_{case}"] = [round(rate, 1) for rate, _ in measured]
            figures[f"{kind}_{case}_threads"] = [threads for _, threads in measured]
    proc = start("vitlab", args.steps, threads=1)
    figures["vitlab_alone_at_one_thread"] = [round(json.loads(proc.communicate()[0].splitlines()[-1])[0], 1)]
    figures["shared_vs_alone"] = round(sum(figures["vitlab_two_at_once"]) / figures["vitlab_alone"][0], 3)
    for case in NEIGHBOURS:
        figures[f"{case}_vs_bare"] = round(figures[f"vitlab_{case}"][0] / figures[f"bare_{case}"][0], 2)
        figures[f"{case}_of_one_core"] = round(figures[f"vitlab_{case}"][0] / figures["vitlab_alone_at_one_thread"][0], 2)
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name}: {value}")


if __name__ == "__main__":
    main()
