"""The default ViT recipe on mnist5k: test accuracy and training seconds, per seed.

The train notebook's defaults (RunConfig()): ViT depth 4, width 64, patch 7, 50 epochs of
the 3,500 training images (mnist5k's pool less its validation split) with random crops, AdamW at 5e-3 with linear decay. Target:
>= 96% test accuracy in <= 60 s of training on 2 CPU cores.

    python benchmarks/small_data_recipe.py --json
"""
from __future__ import annotations

import argparse
import json

from vitlab.run import train
from vitlab.run.config import RunConfig
from vitlab.run.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    runs = []
    for seed in range(args.seeds):
        cfg = RunConfig(seed=seed)
        result = train.fit(cfg, build_model(cfg), progress=False)
        runs.append({"seed": seed, "val_accuracy": result.val_accuracy, "test_accuracy": result.test_accuracy,
                     "train_s": round(result.train_time_s, 1),
                     "images_per_s": round(result.images_per_s)})
    figures = {"runs": runs, "min_test_accuracy": min(r["test_accuracy"] for r in runs),
               "max_train_s": max(r["train_s"] for r in runs), "target": ">= 0.96 in <= 60 s"}
    print(json.dumps(figures) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
