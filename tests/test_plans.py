import subprocess
import sys

import pytest

from vitlab import PROJECT_ROOT
from vitlab.study.plans import SweepError, load_plan

BASE = "base: {depth: 1, width: 16, heads: 2, mlp_dim: 32, train_size: 200, steps: 2}\n"


def test_quickstart_plan():
    plan = load_plan(PROJECT_ROOT / "params" / "quickstart.yaml")
    assert plan.name == "quickstart" and len(plan.runs) >= 12
    assert {c.model for c in plan.runs} == {"vit", "resnet", "hybrid"}
    assert len({c.run_id for c in plan.runs}) == len(plan.runs)
    assert {c.depth for c in plan.runs if c.model == "vit"} >= {1, 2, 4, 6}


def test_grid_zip_and_runs_expand(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(BASE + "runs: [{seed: 0}, {seed: 1}]\ngrid: {depth: [1, 2]}\n"
                 "zip: {width: [16, 32], heads: [2, 4]}\n")
    plan = load_plan(p)
    assert len(plan.runs) == 2 * 2 * 2
    assert {(c.seed, c.depth, c.width, c.heads) for c in plan.runs} == {
        (s, d, w, h) for s in (0, 1) for d in (1, 2) for w, h in ((16, 2), (32, 4))}
    assert plan.name == "s"


MALFORMED = {
    "not yaml": ("base: {depth: [1, 2\n", "not valid YAML"),
    "not a mapping": ("- 1\n- 2\n", "expected a mapping"),
    "unknown top key": (BASE + "grids: {depth: [1]}\n", "unknown key 'grids'; did you mean grid?"),
    "unknown field": (BASE + "grid: {dept: [1, 2]}\n", "dept: unknown field"),
    "wrong type": (BASE + "grid: {depth: [two]}\n", "depth: must be a int"),
    "impossible patch": (BASE + "grid: {patch_size: [5]}\n", "patch_size: 5 does not divide"),
    "heads do not divide": (BASE + "grid: {heads: [3]}\n", "heads: width 16 is not divisible"),
    "unknown dataset": (BASE + "grid: {dataset: [imagenet21k]}\n", "dataset: 'imagenet21k' is not one of"),
    "grid not a list": (BASE + "grid: {depth: 3}\n", "grid.depth: must be a non-empty list"),
    "empty grid axis": (BASE + "grid: {depth: []}\n", "grid.depth: must be a non-empty list"),
    "zip lengths": (BASE + "zip: {width: [16, 32], heads: [2]}\n", "lists must have equal lengths"),
    "duplicate run": (BASE + "runs: [{depth: 2}, {depth: 2}]\n", "duplicate run"),
    "base not mapping": ("base: [1, 2]\n", "base: must be a mapping"),
    "too large subset": (BASE + "grid: {train_size: [5000]}\n", "train_size: mnist5k has 3,500"),
    "bad name": ("name: my sweep!\n" + BASE, "name: 'my sweep!'"),
    "missing notebook": ("notebook: nope.ipynb\n" + BASE, "notebook:"),
    "sweeps beside grid": (BASE + "grid: {depth: [1]}\nsweeps: [{grid: {depth: [2]}}]\n", "inside sweeps"),
    "axis in grid and zip": (BASE + "grid: {depth: [1]}\nzip: {depth: [2]}\n", "in both grid and zip"),
    "axis in grid and tune": (BASE + "grid: {lr: [0.1]}\ntune: {lr: [0.2]}\n", "in both grid and tune"),
    "tuning the seed": (BASE + "tune: {seed: [0, 1]}\n", "tune.seed: not a tuning axis (allowed: lr, weight_decay"),
    "tune not a list": (BASE + "tune: {lr: 0.1}\n", "tune.lr: must be a non-empty list"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_params_give_one_line_errors(case, tmp_path):
    text, expected = MALFORMED[case]
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(SweepError) as err:
        load_plan(p)
    message = str(err.value)
    assert message.startswith(str(p)) and expected in message and "\n" not in message


@pytest.mark.parametrize(("base", "field"), [("{depht: 2}", "depht"), ("{model: resnet, depth: 4}", "depth")])
def test_a_bad_field_in_base_is_reported_at_base_not_at_a_run(tmp_path, base, field):
    """It was reported at `sweeps[0] run 1 (depth=1)`, a run the user never wrote."""
    p = tmp_path / "bad.yaml"
    p.write_text(f"base: {base}\nsweeps:\n  - grid: {{seed: [0, 1]}}\n")
    with pytest.raises(SweepError) as err:
        load_plan(p)
    assert str(err.value).startswith(f"{p}: base: {field}: ")


def test_a_bad_value_a_run_sets_is_reported_at_that_run(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(BASE + "sweeps:\n  - grid: {depth: [1, 0]}\n")
    with pytest.raises(SweepError, match=r": sweeps\[0\] run 2 \(depth=0\): depth: must be >= 1"):
        load_plan(p)


def test_missing_params_file(tmp_path):
    with pytest.raises(SweepError, match="no such params file"):
        load_plan(tmp_path / "absent.yaml")


def test_cli_rejects_bad_params_before_training(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(BASE + "sweeps:\n  - grid: {depth: [1, 2]}\n  - grid: {patch_size: [4, 5]}\n")
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "vitlab.cli", "sweep", str(p), "--results", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "sweeps[1] run 2 (patch_size=5)" in lines[0] and str(p) in lines[0]
    assert not out.exists()


def test_shards_are_disjoint_and_cover_the_plan(tmp_path):
    from vitlab.study.plans import shard

    p = tmp_path / "s.yaml"
    p.write_text(BASE + "grid: {depth: [1, 2, 3], seed: [0, 1, 2, 3, 4]}\n")
    runs = load_plan(p).runs
    slices = [shard(runs, i, 4) for i in range(4)]
    ids = [c.run_id for s in slices for c in s]
    assert sorted(ids) == sorted(c.run_id for c in runs) and len(set(ids)) == 15
    assert [len(s) for s in slices] == [4, 4, 4, 3]
    assert shard(runs, 2, 4) == shard(load_plan(p).runs, 2, 4)  # deterministic


@pytest.mark.parametrize("text", ["4/4", "1", "a/b", "-1/2", "1/0", "0/2/3"])
def test_bad_shard_is_refused(text):
    from vitlab.study.plans import parse_shard

    with pytest.raises(SweepError, match="--shard: .* must be I/N"):
        parse_shard(text)
    assert parse_shard(" 3 / 8 ") == (3, 8)


def test_cli_refuses_bad_shard_and_workers_in_one_line(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(BASE)
    for args, field in ((["--shard", "2/2"], "--shard"), (["--workers", "0"], "--workers")):
        proc = subprocess.run([sys.executable, "-m", "vitlab.cli", "sweep", str(p), "--results", str(tmp_path / "r"),
                               *args], capture_output=True, text=True)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and field in proc.stderr, proc.stderr
        assert not (tmp_path / "r" / "runs").exists()


def test_a_run_starting_from_an_unknown_run_is_refused_before_training(tmp_path):
    from vitlab.study.sweep import run_sweep

    p = tmp_path / "s.yaml"
    p.write_text(BASE + "runs: [{}, {pretrained: 0123456789ab}]\n")
    with pytest.raises(SweepError, match="pretrained: run 0123456789ab is neither in this sweep nor recorded"):
        run_sweep(load_plan(p), tmp_path / "r", progress=False)
    assert not list((tmp_path / "r").rglob("*.json"))
    p.write_text(BASE + "runs: [{pretrained: not-a-run}]\n")
    with pytest.raises(SweepError, match=r"pretrained: a run id \(12 hex digits"):
        load_plan(p)
