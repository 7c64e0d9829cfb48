"""A run under `accelerate launch` on 2 CPU processes, and runs killed with SIGKILL then resumed."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

pytestmark = pytest.mark.slow
FIELDS = ["depth=1", "width=16", "heads=2", "mlp_dim=32", "train_size=512", "batch_size=64", "augment=true"]


def train_args(steps, out, *extra):
    return ["-m", "vitlab.cli", "train", *(a for f in FIELDS + [f"steps={steps}"] for a in ("--set", f)),
            "--results", str(out), "--quiet", "--json", *extra]


def plans_of(steps: int):
    """The run train_args(steps) trains, as its config (its run id names its checkpoint)."""
    from vitlab.run.config import RunConfig

    return (RunConfig.from_dict({k: yaml.safe_load(v) for k, v in (f.split("=") for f in FIELDS + [f"steps={steps}"])}),)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


# Process 0's clock runs 20,000 times fast, so its 10-minute checkpoints come every 30 ms, and
# process 1's does not: a checkpoint decided by each process's own clock stops their collectives
# matching (a hang).
SKEWED_CLOCK = """
import os, sys, time, types
from vitlab import cli
from vitlab.run import train
if os.environ["RANK"] == "0":
    start = time.perf_counter()
    train.time = types.SimpleNamespace(perf_counter=lambda: start + 20000 * (time.perf_counter() - start))
sys.exit(cli.main(sys.argv[1:]))
"""


def launch(script, *args, port=29517, **kwargs):
    """`accelerate launch` on 2 CPU processes. Accelerate runs DDP on CPUs (gloo) when told to use
    the CPU; its launcher is the multi-GPU one."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    command = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port), *script, *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs)


def kill_tree(pid: int) -> None:
    """SIGKILL a launcher and its workers (torch's launcher puts them in groups of their own)."""
    import psutil

    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    for p in procs:
        p.kill()
    psutil.wait_procs(procs)


def finish(proc, timeout=300) -> dict:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        raise AssertionError(f"hung: {proc.communicate()[1][-2000:]}") from None
    assert proc.returncode == 0, err
    return last_json(out)


def alone(steps, out, *extra, env=None) -> subprocess.Popen:
    """The same run in one process, started beside the one it is compared with."""
    return subprocess.Popen([sys.executable, *train_args(steps, out, *extra)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_two_process_ddp_matches_one_process_with_clocks_apart(tmp_path):
    one = alone(40, tmp_path / "one")
    script = tmp_path / "skewed.py"
    script.write_text(SKEWED_CLOCK)
    b = finish(launch([str(script)], *train_args(40, tmp_path / "two")[2:]), timeout=180)
    a = finish(one)
    assert a["run_id"] == b["run_id"] and a["train_steps"] == b["train_steps"] == 40
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    assert b["test_accuracy"] == pytest.approx(a["test_accuracy"], abs=0.005)
    assert len(list((tmp_path / "two" / "runs").glob("*.json"))) == 1  # written once, by the main process


def test_two_processes_killed_mid_epoch_resume_to_the_uninterrupted_result(tmp_path):
    # 8 steps an epoch; checkpoints at 50 and 100 are mid-epoch. The uninterrupted run trains beside.
    uninterrupted = launch(train_args(110, tmp_path / "whole"))
    out = tmp_path / "killed"
    proc = launch(train_args(110, out, "--checkpoint-every", "50"), port=29518)
    (run,) = plans_of(110)
    state = out / "checkpoints" / run.run_id / "state.pt"
    deadline = time.time() + 180
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    kill_tree(proc.pid)
    err = proc.communicate()[1]
    assert state.exists(), err[-3000:]
    import torch

    steps = torch.load(state, weights_only=True)["steps"]
    assert steps in (50, 100), f"killed too late to test a mid-epoch resume (step {steps})"
    resumed = finish(launch(train_args(110, out, "--checkpoint-every", "50"), port=29519))
    whole = finish(uninterrupted)
    assert resumed["test_accuracy"] == whole["test_accuracy"] and resumed["val_accuracy"] == whole["val_accuracy"]
    assert [h["train_accuracy"] for h in resumed["history"]] == [h["train_accuracy"] for h in whole["history"]]
    assert [h["train_loss"] for h in resumed["history"]] == pytest.approx([h["train_loss"] for h in whole["history"]],
                                                                          rel=1e-6)


def test_sigkill_then_rerun_resumes_to_the_uninterrupted_result(tmp_path):
    # One thread for all three: a run takes the cores others leave it, and results differ in
    # their last bits with the thread count (a busy CI machine once gave the whole run 2, the other 1).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    uninterrupted = alone(300, tmp_path / "whole", env=env)  # beside the killed run: one thread each
    out = tmp_path / "killed"
    proc = alone(300, out, "--checkpoint-every", "50", env=env)
    (run,) = plans_of(300)
    state = out / "checkpoints" / run.run_id / "state.pt"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert state.exists() and proc.poll() is None, "killed too late: the run had finished"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "runs").exists()
    resumed = finish(alone(300, out, "--checkpoint-every", "50", env=env))
    assert resumed == finish(uninterrupted)  # bitwise on CPU
