"""Helpers the tests share: records built for a case, a sweep started as a user starts one, its
outcome read back, a free port, simulations run on both cores and stopped once their answer is
clear. Test modules import from here, never from each other."""
import json
import multiprocessing
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pandas as pd

from scipy import stats

from vitlab import PROJECT_ROOT
from vitlab.report import shape
from vitlab.run.config import RunConfig
from vitlab.study import results
from vitlab.study.plans import load_plan

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


# A matched-compute study whose fitted laws cross inside the compute run: the ViT far behind the
# ResNet at small compute and ahead at the largest, so the mean gap favours the ResNet.
COMPUTE = (1e9, 3e9, 9e9, 27e9, 81e9)
VIT_BY_COMPUTE, RESNET_BY_COMPUTE = (0.50, 0.62, 0.72, 0.80, 0.90), (0.80, 0.83, 0.85, 0.86, 0.87)


def matched_compute_runs(vit=VIT_BY_COMPUTE, resnet=RESNET_BY_COMPUTE) -> pd.DataFrame:
    """Three seeds at each compute of COMPUTE: ViTs of growing depth, ResNets of growing width."""
    return runs(*(({**VIT, "depth": d, "seed": s}, acc + 0.01 * (s - 1), c)
                  for d, (c, acc) in enumerate(zip(COMPUTE, vit), 1) for s in (0, 1, 2)),
                *(({**RESNET, "width": 8 * d, "seed": s}, acc + 0.01 * (s - 1), c)
                  for d, (c, acc) in enumerate(zip(COMPUTE, resnet), 1) for s in (0, 1, 2)))


def cli(capsys, *args) -> tuple[int, str, str]:
    """`vitlab ARGS` in this process (where a test checks what a command plans or prints, not the
    process): its exit status and what it printed. The environment is left as it was (main sets
    VITLAB_HOME for the kernels it starts)."""
    from vitlab import cli as command

    before = os.environ.get("VITLAB_HOME")
    try:
        code = command.main([str(a) for a in args])
    finally:
        if before is None:
            os.environ.pop("VITLAB_HOME", None)
        else:
            os.environ["VITLAB_HOME"] = before
    out, err = capsys.readouterr()
    return code, out, err


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


# A star sweep (params/shape.yaml) in a world of SoViT's law with known parameters.
SHAPE_YAML = PROJECT_ROOT / "params" / "shape.yaml"


def vit_flops(depth, width, mlp_dim, patch=7, image=28, channels=1, classes=10):
    """Training FLOPs per image of a ViT: 3x the forward (24ND^2-style blocks, embedding, head)."""
    patches = (image // patch) ** 2
    n = patches + 1
    blocks = depth * (2 * n * (4 * width ** 2 + 2 * width * mlp_dim) + 4 * n * n * width)
    return 3 * (blocks + 2 * patches * patch * patch * channels * width + 2 * width * classes)


def star_arm(name: str) -> list[RunConfig]:
    """params/shape.yaml's runs along one dimension: the centre's and those shrinking it alone."""
    plan = load_plan(SHAPE_YAML)
    others = [f for n, f in shape.DIMENSIONS.items() if n != name]
    return [c for c in plan.runs if all(getattr(c, f) == getattr(plan.runs[0], f) for f in others)]


def star_design():
    """Each dimension's (x, t) points as params/shape.yaml runs them: x the dimension's value, t the
    training FLOPs of that shape at that step budget."""
    return {name: (np.array([getattr(c, field) for c in star_arm(name)], float),
                   np.array([vit_flops(c.depth, c.width, c.mlp_dim) * c.steps * c.batch_size for c in star_arm(name)],
                            float))
            for name, field in shape.DIMENSIONS.items()}


# A known world per dimension, in units of the centre's value (x) and the centre's compute at its
# smallest budget (t), so that the three arms agree at the centre (alpha + eps, beta + xi and c
# shared): errors from 0.5 at the shortest budget to 0.18, the optimum inside the values run at
# the larger budgets, and exponents in SoViT's order (MLP size 0.55, depth 0.33, width 0.24).
TRUTH = {"width": (0.02, 1.5, 0.40, 1.0, 0.05, 0.6, 0.03), "depth": (0.03, 1.0, 0.35, 0.8, 0.10, 0.6, 0.02),
         "MLP size": (0.04, 0.6, 0.30, 0.5, 0.15, 0.6, 0.01)}
TEST_SIZE = 1000


def t_ref() -> float:
    """The centre's training FLOPs at its smallest budget: the world's unit of compute."""
    centre = load_plan(SHAPE_YAML).runs[0]
    return vit_flops(centre.depth, centre.width, centre.mlp_dim) * min(c.steps for c in star_arm("width")) \
        * centre.batch_size


def world(name, x, t):
    return shape._law(np.array(TRUTH[name]), x / x.max(), t / t_ref())


def star_runs(noise=0.0, seeds=1, arms=tuple(shape.DIMENSIONS), budgets=(100, 200, 400, 800), seed=0):
    """Records of params/shape.yaml's runs, test errors from the known world, with seed noise of
    sd `noise` times the error."""
    rng = np.random.default_rng(seed)
    designs, specs = star_design(), []
    for name in arms:
        for cfg, error, flops in zip(star_arm(name), world(name, *designs[name]), designs[name][1]):
            if cfg.steps in budgets:
                specs += [({**cfg.to_dict(), "seed": s}, 1 - error * (1 + noise * rng.normal()), flops)
                          for s in range(seeds)]
    return runs(*specs).drop_duplicates("run_id")


# Simulations: draws of a world with a known truth, each from its own random stream, so that the
# answer does not depend on how many workers drew them or in what order.
WORKERS = min(os.cpu_count() or 1, 2)  # CI has two cores; the simulations are single-threaded
RISK = 1e-3  # the chance, per early look, that a share clear of its limit is not


def simulated(trial: Callable[[np.random.Generator], object], sims: int, seed: int = 0,
              clear: Callable[[list], bool] | None = None, looks: int = 4) -> list:
    """trial(rng) for `sims` independent streams of `seed`, on both cores (in_parallel). With
    `clear`, the results are looked at after each of `looks` equal parts and the rest is not
    drawn once clear(results so far) holds: a sequential Monte-Carlo test, whose early stops
    each add at most RISK to the chance of a wrong answer (see share_below and share_above)."""
    streams = np.random.SeedSequence(seed).spawn(sims)
    out: list = []
    for part in np.array_split(np.arange(sims), looks if clear else 1):
        out += in_parallel(lambda stream: trial(np.random.default_rng(stream)), [streams[i] for i in part])
        if clear and len(out) < sims and clear(out):
            break
    return out


def in_parallel(fn: Callable, items) -> list:
    """[fn(item) for item in items], shared among forked workers: the simulations are
    single-threaded numpy, scipy and pandas, and a fork keeps the parent's imports."""
    global _FN
    _FN = fn  # a forked worker finds it here: closures do not pickle
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        return pool.map(_call, list(items))


_FN: Callable | None = None


def _call(item):
    return _FN(item)


def share_below(limit: float, hit: Callable = bool) -> Callable[[list], bool]:
    """Clear once the hits so far (hit(result) of each) are too few for a share at `limit` to give
    them but with chance RISK: a test that the share is at most `limit` can stop there and pass."""
    return lambda done: stats.binom.cdf(sum(map(hit, done)), len(done), limit) <= RISK


def share_above(limit: float, hit: Callable = bool) -> Callable[[list], bool]:
    """Clear once the hits so far (hit(result) of each) are too many for a share at `limit` to give
    them but with chance RISK: a test that the share is at least `limit` can stop there and pass."""
    return lambda done: stats.binom.sf(sum(map(hit, done)) - 1, len(done), limit) <= RISK
