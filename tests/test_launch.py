"""A run under `accelerate launch` on 2 CPU processes, and a run killed with SIGKILL then resumed."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow
FIELDS = ["depth=1", "width=16", "heads=2", "mlp_dim=32", "train_size=512", "batch_size=64", "augment=true"]


def train_args(steps, out, *extra):
    return ["-m", "vitlab.cli", "train", *(a for f in FIELDS + [f"steps={steps}"] for a in ("--set", f)),
            "--results", str(out), "--quiet", *extra]


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_two_process_ddp_matches_one_process(tmp_path):
    one = subprocess.run([sys.executable, *train_args(20, tmp_path / "one")], capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    # Accelerate runs DDP on CPUs (gloo) when told to use the CPU; its launcher is the multi-GPU one.
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    two = subprocess.run(["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
                          *train_args(20, tmp_path / "two")], capture_output=True, text=True, env=env)
    assert two.returncode == 0, two.stderr
    a, b = last_json(one.stdout), last_json(two.stdout)
    assert a["run_id"] == b["run_id"] and a["train_steps"] == b["train_steps"] == 20
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    assert b["test_accuracy"] == pytest.approx(a["test_accuracy"], abs=0.005)
    assert len(list((tmp_path / "two" / "runs").glob("*.json"))) == 1  # written once, by the main process


def test_sigkill_then_rerun_resumes_to_the_uninterrupted_result(tmp_path):
    whole = subprocess.run([sys.executable, *train_args(300, tmp_path / "whole")], capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *train_args(300, out, "--checkpoint-every", "50")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = last_json(whole.stdout)["run_id"]
    state = out / "checkpoints" / run_id / "state.pt"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert state.exists() and proc.poll() is None, "killed too late: the run had finished"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "runs").exists()
    resumed = subprocess.run([sys.executable, *train_args(300, out, "--checkpoint-every", "50")],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert last_json(resumed.stdout) == last_json(whole.stdout)  # bitwise on CPU
