"""scripts/slurm_array.sh on a real SLURM: a one-node cluster (munged, slurmctld, slurmd) started
on this machine on free ports, talking over loopback (slurmd binds 127.0.0.1; Slurm 22.05's
slurmctld has no bind address and listens on its port on every interface while the tests run)."""
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import free_port, recorded, trained
from vitlab import PROJECT_ROOT
from vitlab.study import plans, results

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not shutil.which("slurmctld") or not shutil.which("munged"),
                                 reason="SLURM is not installed (.ci/run installs Debian's slurm-wlm and munge)")]

SLURM_CONF = """\
ClusterName=vitlabtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=socket={d}/munge.socket
CredType=cred/munge
SlurmUser={user}
SlurmdUser={user}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerParameters=sched_interval=1
CommunicationParameters=NoInAddrAny
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}

    def run(self, *command: str, check: bool = True) -> str:
        done = subprocess.run(list(command), env=self.env, capture_output=True, text=True, timeout=60)
        assert not check or done.returncode == 0, f"{' '.join(command)}: {done.stderr}"
        return done.stdout

    def submit(self, array: str, params: Path, out: Path, *options: str) -> str:
        """The job id of scripts/slurm_array.sh submitted as an array on one CPU per task."""
        return self.run("sbatch", "--parsable", f"--array={array}", "--cpus-per-task=1",
                        f"--output={self.root}/job-%A_%a.out", str(PROJECT_ROOT / "scripts" / "slurm_array.sh"),
                        str(params), str(out), *options).strip().split(";")[0]

    def wait(self, job: str, timeout: float = 600) -> None:
        deadline = time.time() + timeout
        while self.run("squeue", "--noheader", f"--jobs={job}", check=False).strip():
            assert time.time() < deadline, f"job {job} still queued or running after {timeout} s"
            time.sleep(1)

    def log(self, job: str) -> str:
        return "".join(p.read_text() for p in sorted(self.root.glob(f"job-{job}_*.out")))

    def log_of(self, job: str) -> str:
        """A job's (not an array's) output, over every start of it."""
        path = self.root / f"job-{job}.out"
        return path.read_text() if path.exists() else ""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A one-node SLURM cluster for this module's tests; its daemons are stopped afterwards."""
    if os.geteuid() != 0:
        pytest.skip("the test cluster's slurmd launches jobs as root")
    d = tmp_path_factory.mktemp("slurm")
    (d / "state").mkdir()
    (d / "spool").mkdir()
    key = d / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    host = platform.node()
    (d / "slurm.conf").write_text(SLURM_CONF.format(
        host=host, d=d, user="root", cpus=os.cpu_count(), ctld_port=free_port(), slurmd_port=free_port()))
    started, cluster = [], Cluster(d)
    try:
        for command in (["munged", "--foreground", "--force", f"--key-file={key}", f"--socket={d}/munge.socket",
                         f"--pid-file={d}/munged.pid", f"--log-file={d}/munged.log", f"--seed-file={d}/munged.seed"],
                        ["slurmctld", "-D", "-i"], ["slurmd", "-D"]):
            started.append(subprocess.Popen(command, env=cluster.env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
            time.sleep(0.5)
        deadline = time.time() + 60
        while "idle" not in cluster.run("sinfo", "--noheader", "--format=%T", check=False):
            if time.time() > deadline:
                logs = "".join((d / f).read_text()[-2000:] for f in ("slurmctld.log", "slurmd.log") if (d / f).exists())
                pytest.fail(f"the test cluster did not come up:\n{logs}")
            time.sleep(0.5)
        yield cluster
    finally:
        cluster.run("scancel", "--user=root", check=False)
        for proc in reversed(started):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


PARAMS = """
name: slurm
base: {dataset: digits, depth: 1, width: 16, heads: 2, mlp_dim: 32, patch_size: 4, train_size: 512,
       steps: 40, batch_size: 64}
grid: {seed: [0, 1, 2, 3]}
"""


def test_slurm_array_records_every_run_once(slurm, tmp_path):
    params, out = tmp_path / "slurm.yaml", tmp_path / "res"
    params.write_text(PARAMS)
    job = slurm.submit("0-1", params, out)
    slurm.wait(job)
    planned = {c.run_id for c in plans.load_plan(params).runs}
    got = recorded(out)
    assert set(got) == planned and all(r["status"] == "ok" for r in got.values()), slurm.log(job)
    assert trained(slurm.log(job)) == planned and slurm.log(job).count(" ok ") == len(planned)  # each once
    assert {r["host"] for r in got.values()} == {platform.node()}


LONG = """
name: long
base: {dataset: digits, depth: 1, width: 16, heads: 2, mlp_dim: 32, patch_size: 4, train_size: 512,
       steps: 600, batch_size: 64, augment: false}
"""


def test_slurm_task_cancelled_mid_run_resumes_when_submitted_again(slurm, tmp_path):
    params, out = tmp_path / "long.yaml", tmp_path / "res"
    params.write_text(LONG)
    (run,) = plans.load_plan(params).runs
    state = results.checkpoint_dir(out, run.run_id) / "state.pt"
    job = slurm.submit("0", params, out, "--checkpoint-every", "50")
    deadline = time.time() + 300
    while not state.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert state.exists(), slurm.log(job)
    slurm.run("scancel", job)
    slurm.wait(job)
    import torch

    cancelled_at = torch.load(state, weights_only=True)["steps"]
    assert 0 < cancelled_at < 600 and not recorded(out)
    again = slurm.submit("0", params, out, "--checkpoint-every", "50")
    slurm.wait(again)
    record = recorded(out).get(run.run_id)
    assert record is not None and record["status"] == "ok", slurm.log(again)
    assert record["train_steps"] == 600 and record["resumed_from_step"] >= cancelled_at
    assert not state.exists() and list(results.runs_dir(out).glob("*.lock")) == []
    print(json.dumps({"cancelled_at": cancelled_at, "resumed_from": record["resumed_from_step"]}), file=sys.stderr)


# scripts/slurm_multinode.sh: one run over "machines" (here two tasks on the one node, on the CPU).
FIELDS = ["dataset=digits", "depth=1", "width=16", "heads=2", "mlp_dim=32", "patch_size=4", "train_size=512",
          "batch_size=64", "augment=false"]


def train_args(steps: int) -> list[str]:
    return [a for f in FIELDS + [f"steps={steps}"] for a in ("--set", f)]


def multinode(slurm, out: Path, steps: int, *sbatch: str, tasks: int = 2) -> str:
    """The job id of scripts/slurm_multinode.sh with `tasks` machines of one CPU process each."""
    env = {**slurm.env, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "VITLAB_PORT": str(free_port())}
    done = subprocess.run(["sbatch", "--parsable", "--nodes=1", f"--ntasks-per-node={tasks}", "--cpus-per-task=1",
                           f"--output={slurm.root}/job-%j.out", *sbatch,
                           str(PROJECT_ROOT / "scripts" / "slurm_multinode.sh"), str(out), *train_args(steps)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def one_process(out: Path, steps: int) -> subprocess.Popen:
    """The same run in one process of one thread, started beside the job (finished: its record)."""
    return subprocess.Popen([sys.executable, "-m", "vitlab.cli", "train", *train_args(steps), "--results", str(out),
                             "--quiet", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def finished(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_a_two_task_job_acting_as_two_machines_trains_one_run_as_one_process_does(slurm, tmp_path):
    reference = one_process(tmp_path / "one", 40)
    job = multinode(slurm, tmp_path / "two", 40)
    slurm.wait(job, timeout=300)
    alone = finished(reference)
    log = slurm.log_of(job)
    [two] = recorded(tmp_path / "two").values()  # written once, by process 0 of machine 0
    assert two["run_id"] == alone["run_id"] and two["status"] == "ok", log
    assert two["train_steps"] == 40 and two["train_loss"] == pytest.approx(alone["train_loss"], rel=1e-4)
    assert two["test_accuracy"] == pytest.approx(alone["test_accuracy"], abs=0.005)


def test_a_job_warned_before_its_time_limit_checkpoints_requeues_and_ends_as_the_uninterrupted_run(slurm, tmp_path):
    """A one-minute limit with SLURM's warning 50 s before it: the run stops at its next step with
    its checkpoint saved, the job requeues itself, and the run resumes to the uninterrupted result.
    SLURM holds a requeued job about two minutes, and a restart under a one-minute limit would be
    warned again: once requeued, the job is let start a few seconds on, with room to finish."""
    # slurmctld checks time limits every 30 s, so the warning comes 10-40 s in: at least 45 s of
    # training on a fast 2-core machine (6,000 steps took 18 s on one and ended unwarned).
    steps = 16000
    reference = one_process(tmp_path / "whole", steps)  # beside the job: one thread each, on two cores
    job = multinode(slurm, tmp_path / "res", steps, "--time=1", "--signal=B:USR1@50", tasks=1)
    deadline = time.time() + 180
    while True:  # requeued: pending again, after one start (the script's message comes just before)
        shown = slurm.run("scontrol", "show", "job", job, check=False)
        if "JobState=PENDING" in shown and "Restarts=0" not in shown:
            break
        assert time.time() < deadline and not recorded(tmp_path / "res"), slurm.log_of(job) + shown
        time.sleep(0.5)
    # A few seconds on, not now: a requeued job started at once was killed as "non-startable: job
    # credential revoked" (its last start's credential not yet cleared), and never ran again.
    slurm.run("scontrol", "update", f"JobId={job}", "TimeLimit=10", "StartTime=now+5")
    deadline = time.time() + 300  # the record, not an empty squeue: a busy controller can answer nothing
    while not recorded(tmp_path / "res") and time.time() < deadline:
        time.sleep(1)
    slurm.wait(job, timeout=60)
    log = slurm.log_of(job)
    [resumed] = recorded(tmp_path / "res").values() or pytest.fail(log)
    assert f"vitlab train: stopped by SIGTERM at step {resumed['resumed_from_step']} of {steps}" in log, log
    assert 0 < resumed["resumed_from_step"] < steps and resumed["train_steps"] == steps
    alone = finished(reference)
    assert (resumed["train_loss"], resumed["test_accuracy"], resumed["val_accuracy"]) == (
        alone["train_loss"], alone["test_accuracy"], alone["val_accuracy"])  # bitwise on CPU, one thread
