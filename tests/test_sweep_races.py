"""Concurrent sweeps on one results directory: runs that depend on others across workers and shards,
and six sweeps at once with one killed mid-run."""
import os
import signal
import time

import psutil
import pytest

from tests.helpers import recorded, start, trained
from vitlab.study import locks, plans, results, sweep

pytestmark = pytest.mark.slow
# Two pre-training runs (the first long), two independent runs, and two fine-tuning runs that each
# start from the other shard's pre-training run (shards take every other run of the plan).
DEPENDENT = """
name: deps
base: {dataset: digits, depth: 1, width: 16, heads: 2, mlp_dim: 32, patch_size: 4, train_size: 512,
       steps: 20, batch_size: 64, augment: false}
sweeps:
  - runs: [{seed: 0, steps: 1500}, {seed: 1}, {seed: 2, lr: 0.003}, {seed: 3, lr: 0.003}]
  - runs: [{seed: 0, lr: 0.001, pretrained: {seed: 1}}, {seed: 1, lr: 0.001, pretrained: {seed: 0, steps: 1500}}]
"""


@pytest.fixture
def dependent(tmp_path):
    path = tmp_path / "deps.yaml"
    path.write_text(DEPENDENT)
    return path


def test_workers_wait_for_the_pre_training_run(dependent, tmp_path):
    plan = plans.load_plan(dependent)
    counts = sweep.run_sweep(plan, tmp_path / "res", progress=False, workers=2)
    got = recorded(tmp_path / "res")
    assert {r: got[r]["status"] for r in got} == {c.run_id: "ok" for c in plan.runs}
    assert counts["ok"] == 6


def test_a_failed_pre_training_run_fails_its_fine_tuning_run_with_the_reason(dependent, tmp_path):
    plan = plans.load_plan(dependent)
    out = tmp_path / "res"
    pre = next(c for c in plan.runs if c.steps == 1500)
    results.write(out, results.make_record(pre, status="failed", error="RuntimeError: out of memory"))
    tuned = next(c for c in plan.runs if c.pretrained == pre.run_id)
    counts = sweep.run_sweep(plans.Plan(plan.name, plan.path, plan.notebook, (pre, tuned)), out, progress=False)
    record = recorded(out)[tuned.run_id]
    assert record["status"] == "failed" and counts == {**counts, "failed": 1, "skipped": 1}
    assert record["error"] == f"pretrained run {pre.run_id} failed: RuntimeError: out of memory"


def test_a_worker_sweep_and_two_shards_at_once_record_each_run_once(dependent, tmp_path):
    """Two shards (0/2, 1/2) and a two-worker sweep of one plan at once, fine-tuning runs waiting
    for pre-training runs the others hold: each run trained once, its notebook kept, nothing left."""
    out = tmp_path / "res"
    procs = [start(dependent, out, "--workers", "2", threads=1),
             start(dependent, out, "--shard", "0/2", threads=1), start(dependent, out, "--shard", "1/2", threads=1)]
    logs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in logs]
    planned = {c.run_id for c in plans.load_plan(dependent).runs}
    got = recorded(out)
    assert set(got) == planned and all(r["status"] == "ok" for r in got.values())
    done = [trained(log) for log, _ in logs]
    assert set().union(*done) == planned and sum(map(len, done)) == len(planned)  # each trained once
    assert len(list((out / "notebooks").glob("*.ipynb"))) == len(planned)
    assert [p.name for p in results.runs_dir(out).iterdir() if p.suffix != ".json"] == []  # no lock or temp file left


TWELVE = """
name: twelve
base: {dataset: digits, depth: 1, width: 16, heads: 2, mlp_dim: 32, patch_size: 4, train_size: 512,
       steps: 150, batch_size: 64}
grid: {seed: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]}
"""


def started_kernel(process) -> bool:
    """A kernel past exec: one caught between fork and exec and stopped there would never ask to
    die with its sweep (notebook.die_with), a state only this test's SIGSTOP can hold it in."""
    try:
        return any("ipykernel" in part for part in process.cmdline())
    except psutil.Error:
        return False


def test_six_sweeps_at_once_with_one_killed_record_every_run_once(tmp_path):
    """The same sweep six times at once on one directory (so also twice at once): every run is
    recorded once and trained by one survivor, and the killed sweep's run is taken over."""
    params, out = tmp_path / "twelve.yaml", tmp_path / "res"
    params.write_text(TWELVE)
    procs = [start(params, out, threads=1) for _ in range(6)]
    try:
        victim, deadline = procs[0], time.time() + 300
        # Kill the first sweep while it holds a run it has just claimed (so that the run cannot have
        # been recorded in the moment before the kill), once the others have passed that run by
        # (they hold or have recorded two others).
        while time.time() < deadline and victim.poll() is None:
            holders = {p.stem: locks.holder(out, p.stem) or {} for p in results.runs_dir(out).glob("*.lock")}
            held = [run for run, h in holders.items() if h.get("pid") == victim.pid and time.time() - h["since"] < 1]
            others = len(recorded(out)) + sum(h.get("pid") not in (None, victim.pid) for h in holders.values())
            kernels = [k for k in psutil.Process(victim.pid).children(recursive=True) if started_kernel(k)]
            if held and others >= 2 and kernels:
                break
            time.sleep(0.05)
        assert held and victim.poll() is None, "the first sweep finished before it could be killed"
        # Its kernel stopped first, so that nothing but a signal can end it (not ipykernel's own check
        # for a dead parent, once a second): it must die with the sweep.
        for kernel in kernels:
            kernel.suspend()
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        time.sleep(0.5)
        orphans = [k for k in kernels if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
        for kernel in orphans:
            kernel.kill()
        assert not orphans, "the killed sweep's kernel outlived it"
        logs = [p.communicate(timeout=600) for p in procs[1:]]
        assert [p.returncode for p in procs[1:]] == [0] * 5, [err[-2000:] for _, err in logs]
        planned = {c.run_id for c in plans.load_plan(params).runs}
        got = recorded(out)
        assert set(got) == planned and all(r["status"] == "ok" for r in got.values())  # none lost
        done = [trained(log) for log, _ in logs]
        assert sum(map(len, done)) == len(set().union(*done))  # no run trained by two survivors
        assert held[0] in set().union(*done)  # the killed sweep's run was taken over
        assert [p.name for p in results.runs_dir(out).iterdir() if p.suffix != ".json"] == []
    finally:  # nothing left running when a check fails
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
