"""How long `vitlab report` takes on a results directory of many runs (target: 200 runs in 10 s).

The records are the real configs of the shipped params files (with extra seeds up to --runs),
their parameters and FLOPs counted on the real models, and saved (untrained) weights for every
ViT; only the accuracies are made up, from a saturating law in compute plus noise, because
this measures the report, not training.

    python benchmarks/report_speed.py --json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from vitlab import PROJECT_ROOT
from vitlab.report import render
from vitlab.run import datasets, step, train
from vitlab.run.config import RunConfig
from vitlab.run.flops import TRAIN_FLOPS_PER_FORWARD, forward_flops, n_params
from vitlab.run.models import build_model
from vitlab.study import plans, results


def fill(out: Path, n_runs: int) -> None:
    loaded = [plans.load_plan(p) for p in sorted((PROJECT_ROOT / "params").glob("*.yaml"))]
    configs = {c.run_id: c for plan in loaded for c in plan.runs}
    base = list(configs.values())
    seed = 10
    while len(configs) < n_runs:
        for cfg in base:
            more = RunConfig.from_dict({**cfg.to_dict(), "seed": seed})
            configs.setdefault(more.run_id, more)
            if len(configs) == n_runs:
                break
        seed += 1
    rng = np.random.default_rng(0)
    measured: dict[str, tuple[int, int]] = {}
    for cfg in list(configs.values())[:n_runs]:
        key = json.dumps(cfg.arch(), sort_keys=True)
        model = build_model(cfg)
        if key not in measured:
            channels = datasets.spec(cfg.dataset).channels
            measured[key] = (n_params(model), forward_flops(model, (channels, cfg.input_size, cfg.input_size)))
        params, flops = measured[key]
        batch, _, steps = step.budget(cfg)
        compute = TRAIN_FLOPS_PER_FORWARD * flops * batch * steps
        error = float(np.clip(3.0 * (compute / 1e9) ** -0.35 + 0.03 + rng.normal(0, 0.01), 0.01, 0.9))
        result = train.TrainResult(
            status="ok", val_accuracy=1 - error + rng.normal(0, 0.01), test_accuracy=1 - error, train_loss=error, n_params=params, flops_per_image=flops,
            train_flops=compute, train_steps=steps, images_seen=batch * steps, train_time_s=10.0, wall_time_s=11.0,
            images_per_s=batch * steps / 10.0, device="cpu", peak_memory_gib=1.0, threads=2,
            transfer={"fewshot_1": 0.3, "fewshot_5": 0.5, "fewshot_10": 0.6 - error / 2, "fewshot_25": 0.7,
                      "linear_probe": 0.8 - error / 2})
        if cfg.model == "vit":
            results.save_weights(out, cfg.run_id, model)
        results.write(out, results.make_record(cfg, result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        fill(out, args.runs)
        started = time.perf_counter()
        html = render.render(out)
        seconds = time.perf_counter() - started
        figures = {"runs": len(results.load_table(out)), "report_s": round(seconds, 1),
                   "html_mb": round(html.stat().st_size / 1e6, 2), "target_s": 10}
    print(json.dumps(figures) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
