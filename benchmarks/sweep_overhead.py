"""Fixed cost per sweep run: papermill, kernel start, imports and record writing.

Runs a sweep of zero-step runs (the model is built and evaluated, never trained)
through the real sweep runner and prints the mean seconds per run spent outside
training and evaluation.

    python benchmarks/sweep_overhead.py --json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

from vitlab.study import plans, results, sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        params = Path(tmp) / "overhead.yaml"
        params.write_text(yaml.safe_dump({
            "name": "overhead",
            "base": {"dataset": "digits", "depth": 1, "width": 16, "heads": 1, "mlp_dim": 16,
                     "patch_size": 4, "train_size": 256, "steps": 0},
            "grid": {"seed": list(range(args.runs))}}))
        plan = plans.load_plan(params)
        started = time.perf_counter()
        counts = sweep.run_sweep(plan, Path(tmp) / "results", progress=False, workers=args.workers)
        wall = time.perf_counter() - started
        df = results.load_table(Path(tmp) / "results")
    assert counts["ok"] == args.runs, counts
    inside = float(df["wall_time_s"].sum())  # fit(): data to device, FLOP count, evaluation
    figures = {
        "runs": args.runs, "workers": args.workers, "sweep_wall_s": round(wall, 2),
        "mean_run_wall_s": round(wall / args.runs, 2),
        "mean_overhead_s_per_run": round((wall - inside / args.workers) / args.runs, 2),
        "target_s_per_run": 5.0,
    }
    print(json.dumps(figures) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
