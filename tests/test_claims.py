"""Claims keep concurrent sweeps on one results directory from training a run twice."""
import json
import os
import platform
import subprocess
import sys
import time

from vitlab import claims
from vitlab.claims import Claims


def test_a_claim_is_exclusive_until_released(tmp_path):
    with Claims(tmp_path) as a, Claims(tmp_path) as b:
        assert a.acquire("run1")
        assert not b.acquire("run1")  # held by a live process (this one)
        assert claims.holder(tmp_path, "run1")["pid"] == os.getpid()
        a.release("run1")
        assert claims.holder(tmp_path, "run1") is None
        assert b.acquire("run1")
    assert not claims.lock_path(tmp_path, "run1").exists()  # released on exit


def test_a_dead_processes_claim_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    lock = claims.lock_path(tmp_path, "run1")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": platform.node(), "pid": int(dead), "since": 0}))
    assert claims.holder(tmp_path, "run1") is None
    with Claims(tmp_path) as c:
        assert c.acquire("run1")
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_another_hosts_claim_holds_until_its_heartbeat_stops(tmp_path):
    lock = claims.lock_path(tmp_path, "run1")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "since": 0}))
    with Claims(tmp_path) as c:
        assert not c.acquire("run1")
        old = time.time() - claims.STALE_S - 1
        os.utime(lock, (old, old))
        assert c.acquire("run1")


def test_heartbeat_keeps_a_claim_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "HEARTBEAT_S", 0.05)
    with Claims(tmp_path) as c:
        assert c.acquire("run1")
        lock = claims.lock_path(tmp_path, "run1")
        old = time.time() - 1000
        os.utime(lock, (old, old))
        time.sleep(0.3)
        assert time.time() - lock.stat().st_mtime < 5


def test_a_dead_claim_on_a_recorded_run_is_cleared(tmp_path):
    lock = claims.lock_path(tmp_path, "run1")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": platform.node(), "pid": 2**22 + 1, "since": 0}))
    with Claims(tmp_path) as c:
        c.clear_stale("run1")
        assert not lock.exists()
        assert c.acquire("run2")
        c.clear_stale("run2")  # a live claim stays
        assert claims.lock_path(tmp_path, "run2").exists()
