"""The shipped params files: each expands, validates and dry-runs on this machine."""
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import cli
from vitlab import PROJECT_ROOT
from vitlab.study.plans import load_plan

SHIPPED = sorted((PROJECT_ROOT / "params").glob("*.yaml"))
# Each study the report draws needs its params file, moving the axis it is named for.
STUDIES = {"depth": {"depth"}, "width": {"width", "heads"}, "patch_size": {"patch_size"},
           "scaling_all": {"depth", "width", "mlp_dim", "patch_size"}, "data_size": {"train_size", "model"},
           "matched_compute": {"model", "depth", "width"}, "pos_embed": {"pos_embed"},
           "pooling": {"pool", "lr"}, "quickstart": {"depth", "width", "mlp_dim", "patch_size", "train_size", "model"},
           "transfer": {"dataset", "pretrained", "model"}, "shape": {"depth", "width", "mlp_dim", "steps"}}


def test_every_study_is_shipped():
    assert {p.stem for p in SHIPPED} == set(STUDIES)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_plan_moves_its_axes(path):
    plan = load_plan(path)
    assert plan.name == path.stem
    configs = [c.to_dict() for c in plan.runs]
    moved = {k for k in configs[0] if len({repr(c[k]) for c in configs}) > 1}
    assert STUDIES[path.stem] <= moved


@pytest.mark.slow  # about a minute: every shipped shape timed (shapes the files share once)
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_dry_run_prints_the_plan_and_trains_nothing(path, tmp_path, capsys):
    """In this process: the shapes the params files share are timed once (cost.estimate)."""
    code, out, err = cli(capsys, "sweep", path, "--dry-run", "--results", tmp_path / "res")
    assert code == 0, err
    plan = load_plan(path)
    lines = out.splitlines()
    assert all(any(line.startswith(c.run_id) for line in lines) for c in plan.runs)
    total = re.search(rf"^{plan.name}: {len(plan.runs)} runs, 0 recorded in \S+, {len(plan.runs)} to train: "
                      r"[\d.e+-]+ train PFLOPs, estimated ([\d.]+) (s|min|h)", out, re.M)
    assert total and float(total[1]) > 0
    assert not (tmp_path / "res").exists()


PAPER = sorted((PROJECT_ROOT / "params" / "paper").glob("*.yaml"))


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_scale_plans_validate_without_their_data(path):
    plan = load_plan(path)
    assert plan.name == f"paper_{path.stem}" and len(plan.runs) >= 8
    assert all(c.input_size == 224 and c.precision == "bf16" for c in plan.runs)


def test_a_sweep_without_its_data_fails_in_one_line_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VITLAB_DATA", str(tmp_path / "empty"))
    code, _, err = cli(capsys, "sweep", PAPER[0], "--results", tmp_path / "r")
    assert code == 2 and err.count("\n") <= 2, err
    last = err.strip().splitlines()[-1]
    assert "dataset cifar100:" in last and "cifar-100-python not found" in last and "download it" in last
    assert not list((tmp_path / "r").rglob("*.json"))


TINY = ("name: tiny\nbase: {dataset: DATASET, depth: 1, width: 16, heads: 2, mlp_dim: 32, patch_size: 4, "
        "train_size: 200, steps: 2}\ngrid: {seed: [0, 1, 2]}\n")


def test_a_dry_run_counts_recorded_runs_and_estimates_only_the_rest(tmp_path, capsys):
    """After a sweep it said "19 runs ... estimated 4.4 h" where a rerun trains nothing."""
    from vitlab.study import results

    params = tmp_path / "tiny.yaml"
    params.write_text(TINY.replace("DATASET", "digits"))
    runs = load_plan(params).runs
    out = tmp_path / "res"
    for cfg in runs[:2]:
        results.write(out, results.make_record(cfg, status="failed", error="x"))
    code, printed, err = cli(capsys, "sweep", params, "--dry-run", "--results", out)
    assert code == 0, err
    assert f"tiny: 3 runs, 2 recorded in {out}, 1 to train: " in printed
    assert [c.run_id for c in runs if re.search(rf"^{c.run_id} ", printed, re.M)] == [runs[2].run_id]
    results.write(out, results.make_record(runs[2], status="failed", error="x"))
    code, printed, _ = cli(capsys, "sweep", params, "--dry-run", "--results", out)
    assert code == 0 and printed.strip() == f"tiny: 3 runs, 3 recorded in {out}, 0 to train: nothing to train"


def test_a_dry_run_says_the_sweep_would_refuse_a_missing_dataset(tmp_path, monkeypatch, capsys):
    """It printed a plan and exited 0; only the real sweep refused."""
    params = tmp_path / "tiny.yaml"
    params.write_text(TINY.replace("DATASET", "cifar10"))
    monkeypatch.setenv("VITLAB_DATA", str(tmp_path / "empty"))
    code, printed, err = cli(capsys, "sweep", params, "--dry-run", "--results", tmp_path / "res")
    assert code == 1, err
    refused = [line for line in printed.splitlines() if line.startswith("refused: ")]
    assert len(refused) == 1 and "dataset cifar10:" in refused[0] and "not found" in refused[0]
    assert not (tmp_path / "res").exists()


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads /proc/stat")
def test_a_dry_run_on_a_busy_machine_says_so(tmp_path, capsys):
    """Its estimates ran erratically beside other work (a width-32 ViT estimated at 17.6 min took
    326 s); it times the median step and says when others held the cores while it calibrated.
    A shape of its own (width 24), so that it is timed here, beside the busy processes."""
    params = tmp_path / "tiny.yaml"
    params.write_text(TINY.replace("DATASET", "digits").replace("width: 16", "width: 24"))
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        code, printed, err = cli(capsys, "sweep", params, "--dry-run", "--results", tmp_path / "res")
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert code == 0, err
    assert re.search(r"^note: other processes kept [\d.]+ of \d+ cores busy while calibrating", printed, re.M)
