"""Helpers the tests share: records built for a case, a sweep started as a user starts one, its
outcome read back, a free port. Test modules import from here, never from each other."""
import json
import os
import re
import socket
import subprocess
import sys

import pandas as pd

from vitlab.run.config import RunConfig
from vitlab.study import results

VIT = dict(model="vit", depth=4, width=64, heads=4, mlp_dim=128, patch_size=7, steps=600)
RESNET = dict(model="resnet", depth=8, width=8, steps=600)
HYBRID = dict(model="hybrid", depth=2, width=32, heads=2, mlp_dim=64, patch_size=1, steps=600)


def runs(*specs) -> pd.DataFrame:
    """Records from (config overrides, test accuracy, training FLOPs[, val accuracy]) tuples;
    validation accuracy is the test accuracy unless given."""
    rows = []
    for overrides, accuracy, flops, *val in specs:
        cfg = RunConfig.from_dict(overrides)
        rows.append({"run_id": cfg.run_id, "status": "ok", **cfg.to_dict(), "test_accuracy": accuracy,
                     "val_accuracy": val[0] if val else accuracy, "train_flops": flops,
                     "n_params": 1000 * cfg.depth * (cfg.width or 1)})
    return pd.DataFrame(rows)


def start(params, out, *extra, threads=None):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    return subprocess.Popen([sys.executable, "-m", "vitlab.cli", "sweep", str(params), "--results", str(out),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def recorded(out) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in results.runs_dir(out).glob("*.json")}


def trained(stdout: str) -> set[str]:
    """Run ids a sweep process reports (one line each on stdout) having trained."""
    return set(re.findall(r"^([0-9a-f]{12}) +ok ", stdout, re.M))


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
