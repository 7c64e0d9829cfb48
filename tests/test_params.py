"""The shipped params files: each expands, validates and dry-runs on this machine."""
import re
import subprocess
import sys

import pytest

from vitlab import PROJECT_ROOT
from vitlab.sweep import load_plan

SHIPPED = sorted((PROJECT_ROOT / "params").glob("*.yaml"))
# Each study the report draws needs its params file, moving the axis it is named for.
STUDIES = {"depth": {"depth"}, "width": {"width", "heads", "mlp_dim"}, "patch_size": {"patch_size"},
           "scaling_all": {"depth", "width", "patch_size"}, "data_size": {"train_size", "model"},
           "matched_compute": {"model", "depth", "width"}, "pos_embed": {"pos_embed"},
           "pooling": {"pool", "lr"}, "quickstart": {"depth", "width", "patch_size", "train_size", "model"}}


def test_every_study_is_shipped():
    assert {p.stem for p in SHIPPED} == set(STUDIES)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_plan_moves_its_axes(path):
    plan = load_plan(path)
    assert plan.name == path.stem
    configs = [c.to_dict() for c in plan.runs]
    moved = {k for k in configs[0] if len({repr(c[k]) for c in configs}) > 1}
    assert STUDIES[path.stem] <= moved


@pytest.mark.slow
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_dry_run_prints_the_plan_and_trains_nothing(path, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vitlab.cli", "sweep", str(path), "--dry-run",
                           "--results", str(tmp_path / "res")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    plan = load_plan(path)
    lines = proc.stdout.splitlines()
    assert all(any(line.startswith(c.run_id) for line in lines) for c in plan.runs)
    total = re.search(rf"^{plan.name}: {len(plan.runs)} runs, [\d.e+-]+ train PFLOPs, estimated ([\d.]+) (s|min|h)",
                      proc.stdout, re.M)
    assert total and float(total[1]) > 0
    assert not (tmp_path / "res").exists()
