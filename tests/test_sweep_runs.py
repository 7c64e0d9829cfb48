"""Sweeps under stress: SIGKILL and resume, damaged records, shards at once, workers, kernel
reuse. One sweep of PARAMS is trained per module (swept); tests that start from a finished sweep
copy it. Several sweeps of one directory at once are tests/test_sweep_races.py's."""
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import cli, recorded, start, trained
from vitlab.study import plans, results, sweep

pytestmark = pytest.mark.slow
# Each run trains about a second on a CPU, so a sweep can be caught part-way.
PARAMS = """
name: stress
base: {dataset: digits, depth: 1, width: 16, heads: 2, mlp_dim: 32, patch_size: 4, train_size: 512,
       steps: 100, batch_size: 64}
grid: {seed: [0, 1, 2, 3, 4, 5]}
"""


@pytest.fixture
def params(tmp_path):
    path = tmp_path / "stress.yaml"
    path.write_text(PARAMS)
    return path


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """PARAMS swept once, on one thread (runs bitwise repeatable), by a sweep process as a user
    starts one: (params file, results directory, what the sweep printed). Tests that start from a
    finished sweep copy the directory rather than train their own."""
    root = tmp_path_factory.mktemp("stress")
    params = root / "stress.yaml"
    params.write_text(PARAMS)
    sweep_process = start(params, root / "res", threads=1)
    log, err = sweep_process.communicate(timeout=300)
    assert sweep_process.returncode == 0, err
    return params, root / "res", log


def copied(swept, tmp_path) -> Path:
    out = tmp_path / "res"
    shutil.copytree(swept[1], out)
    return out


def leftovers(out) -> list[str]:
    return [p.name for p in results.runs_dir(out).iterdir() if p.suffix != ".json"]  # locks, temp files, .bad


def test_sigkill_part_way_then_rerun_finishes_without_retraining(params, tmp_path):
    out = tmp_path / "res"
    planned = {c.run_id for c in plans.load_plan(params).runs}
    proc = start(params, out)
    deadline = time.time() + 180
    while len(recorded(out)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert len(recorded(out)) >= 2, proc.communicate()[1]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)  # the kernel notices its parent is gone within a second and exits
    before = recorded(out)
    assert 2 <= len(before) < len(planned), "the kill came too late to test anything"

    rerun = start(params, out)
    log, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    after = recorded(out)
    assert set(after) == planned and len(list(results.runs_dir(out).glob("*.json"))) == len(planned)
    assert all(r["status"] == "ok" for r in after.values())
    for run_id, record in before.items():  # nothing finished was trained again
        assert after[run_id]["finished_at"] == record["finished_at"]
    assert trained(log) == planned - set(before)
    assert f"{len(before)} skipped" in err
    assert leftovers(out) == []


def test_damaged_records_never_stop_a_command_and_a_rerun_trains_their_runs_once(swept, tmp_path, damage, capsys):
    """A truncated, an empty, a foreign, a list-valued record and another run's record in runs/:
    `vitlab results` and `vitlab report` name each in one line and finish; a rerun sweep sets each
    aside (kept as .bad) and trains its run again, once; the next rerun trains nothing."""
    params, out = swept[0], copied(swept, tmp_path)
    planned = sorted(c.run_id for c in plans.load_plan(params).runs)
    whole = recorded(out)
    kinds = damage(out, planned)

    code, listed, err = cli(capsys, "results", out)
    assert code == 0, err
    named = [line for line in err.splitlines() if line.startswith("vitlab results: ")]
    assert len(named) == len(kinds) and all("; skipped" in line for line in named)
    assert {Path(line.split(": ")[1]).stem for line in named} == set(kinds)
    assert set(re.findall(r"^([0-9a-f]{12}),", listed, re.MULTILINE)) == set(planned) - set(kinds)
    code, _, err = cli(capsys, "report", out)
    assert code == 0, err
    assert err.count("left out of the report") == len(kinds)
    assert all(f"runs/{r}.json" in (out / "report.html").read_text() for r in kinds)

    rerun = start(params, out, threads=1)
    log, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert trained(log) == set(kinds)
    assert err.count("the run is trained again") == len(kinds) and "Traceback" not in err
    assert sorted(p.name for p in results.runs_dir(out).glob("*.bad")) == sorted(f"{r}.json.bad" for r in kinds)
    again = recorded(out)
    assert set(again) == set(planned) and all(r["status"] == "ok" for r in again.values())
    for run_id in kinds:  # retrained to the same result (bitwise on a CPU)
        assert again[run_id]["test_accuracy"] == whole[run_id]["test_accuracy"]
    code, log, err = cli(capsys, "sweep", params, "--results", out)
    assert code == 0 and trained(log) == set() and f"{len(planned)} skipped" in err


def test_each_runs_line_says_what_varies_both_accuracies_and_progress_and_a_rerun_says_what_is_recorded(
        swept, tmp_path):
    """In a pipe (no bar drawn) each run's line carries n/N and the time left; it showed every
    field the runs share, one accuracy without its split, and a rerun did not say what was done."""
    params, _, log = swept
    lines = [line for line in log.splitlines() if re.match(r"[0-9a-f]{12} ", line)]
    assert len(lines) == 6
    for n, line in enumerate(lines, 1):
        assert re.search(r" ok (-|seed=\d)  val=0\.\d{3}  test=0\.\d{3}  \([\d.]+ s; "
                         rf"{n}/6 done, \d+:\d\d so far, about \d+:\d\d left\)$", line), line
        assert "steps=" not in line and "dataset=" not in line  # what all runs share is not repeated
    out = copied(swept, tmp_path)
    results.record_path(out, lines[0].split()[0]).unlink()
    rerun = start(params, out)
    log, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0 and err.splitlines()[0].endswith("; 5 of 6 already recorded"), err
    assert len(trained(log)) == 1


def test_workers_share_the_sweep(params, tmp_path, capsys):
    """Without a bar (progress=False, as in a notebook or script), each run's line still counts
    the runs done: it said 0/6 on every line, and the time left grew."""
    plan = plans.load_plan(params)
    counts = sweep.run_sweep(plan, tmp_path / "res", progress=False, workers=2)
    assert counts["ok"] == len(plan.runs)
    assert set(recorded(tmp_path / "res")) == {c.run_id for c in plan.runs}
    done = re.findall(r"; (\d+)/6 done, ", capsys.readouterr().out)
    assert done == [str(n) for n in range(1, 7)], done


def test_a_reused_kernel_gives_the_fresh_kernel_results(swept, tmp_path, monkeypatch):
    """The module's sweep ran its six runs in one reused kernel; a third of them again, each in a
    fresh kernel, give the same results."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # results differ in their last bits with the thread count
    params, reused, _ = swept
    plan = plans.load_plan(params)
    assert sweep.run_sweep(plan, tmp_path / "fresh", progress=False, shard_spec=(1, 3), fresh_kernels=True)["ok"] == 2
    new = recorded(tmp_path / "fresh")
    assert len(new) == 2
    for run_id, record in new.items():  # bitwise on CPU: same loss and accuracy
        assert (recorded(reused)[run_id]["train_loss"], recorded(reused)[run_id]["test_accuracy"]) == \
               (record["train_loss"], record["test_accuracy"])


def test_a_fine_tuning_run_follows_its_pre_training_run(tmp_path):
    params = tmp_path / "transfer.yaml"
    params.write_text("""
base: {dataset: mnist5k, depth: 1, width: 16, heads: 2, mlp_dim: 32, patch_size: 7, train_size: 256, steps: 20,
       augment: false}
sweeps:
  - runs: [{dataset: digits, image_size: 28, train_size: 200, optimizer: sgd, lr: 0.01, pretrained: {}}]
  - runs: [{}, {model: resnet, depth: 8, width: 8}]
""")
    plan = plans.load_plan(params)
    assert [c.pretrained for c in plan.runs] == [None, None, plan.runs[0].run_id]  # pre-training goes first
    assert sweep.run_sweep(plan, tmp_path / "res", progress=False)["ok"] == 3
    df = results.load_table(tmp_path / "res")
    tuned = df[df["pretrained"].notna()].iloc[0]
    assert tuned["dataset"] == "digits" and tuned["pretrained"] == plan.runs[0].run_id
    from vitlab.report import tables

    table = tables.transfer_table(df).data
    assert table.loc[0, "pre-trained on"] == "mnist5k" and table.loc[0, "fine-tuned on"] == "digits"


def test_a_run_a_signal_stopped_in_its_kernel_is_not_recorded_failed(tmp_path):
    """SLURM's SIGTERM reaches a sweep's kernels too: the run checkpoints and stops (signals.Stopped),
    and the sweep stops with it, recording nothing, so that the job submitted again resumes it."""
    from papermill.exceptions import PapermillExecutionError

    from vitlab.run.config import RunConfig

    class StoppedKernel:
        def execute(self, *args):
            raise PapermillExecutionError(0, 1, "", "Stopped", "SIGTERM at step 7 of 12", [])

    plan = plans.Plan("p", tmp_path / "p.yaml", tmp_path / "train.ipynb", ())
    cfg = RunConfig.from_dict({"depth": 1})
    with pytest.raises(PapermillExecutionError):
        sweep._train(plan, cfg, tmp_path, StoppedKernel())
    assert results.read_record(tmp_path, cfg.run_id) is None
