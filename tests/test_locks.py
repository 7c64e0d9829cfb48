"""Locks keep concurrent sweeps on one results directory from training a run twice."""
import json
import os
import platform
import subprocess
import sys
import time

from vitlab.study import locks
from vitlab.study.locks import Locks


def test_a_claim_is_exclusive_until_released(tmp_path):
    with Locks(tmp_path) as a, Locks(tmp_path) as b:
        assert a.acquire("run1")
        assert not b.acquire("run1")  # held by a live process (this one)
        assert locks.holder(tmp_path, "run1")["pid"] == os.getpid()
        a.release("run1")
        assert locks.holder(tmp_path, "run1") is None
        assert b.acquire("run1")
    assert not locks.lock_path(tmp_path, "run1").exists()  # released on exit


def test_a_dead_processes_claim_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    lock = locks.lock_path(tmp_path, "run1")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": platform.node(), "pid": int(dead), "since": 0}))
    assert locks.holder(tmp_path, "run1") is None
    with Locks(tmp_path) as c:
        assert c.acquire("run1")
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_another_hosts_claim_holds_until_its_heartbeat_stops(tmp_path):
    lock = locks.lock_path(tmp_path, "run1")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "since": 0}))
    with Locks(tmp_path) as c:
        assert not c.acquire("run1")
        old = time.time() - locks.STALE_S - 1
        os.utime(lock, (old, old))
        assert c.acquire("run1")


def test_heartbeat_keeps_a_claim_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "HEARTBEAT_S", 0.05)
    with Locks(tmp_path) as c:
        assert c.acquire("run1")
        lock = locks.lock_path(tmp_path, "run1")
        old = time.time() - 1000
        os.utime(lock, (old, old))
        time.sleep(0.3)
        assert time.time() - lock.stat().st_mtime < 5


def test_a_dead_claim_on_a_recorded_run_is_cleared(tmp_path):
    lock = locks.lock_path(tmp_path, "run1")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": platform.node(), "pid": 2**22 + 1, "since": 0}))
    with Locks(tmp_path) as c:
        c.clear_stale("run1")
        assert not lock.exists()
        assert c.acquire("run2")
        c.clear_stale("run2")  # a live claim stays
        assert locks.lock_path(tmp_path, "run2").exists()


class _Watched:
    """The os module, checking after every call that a lock which exists names its owner."""

    def __init__(self, lock):
        self.lock, self.seen = lock, []

    def __getattr__(self, name):
        fn = getattr(os, name)
        if not callable(fn):
            return fn

        def call(*args, **kwargs):
            out = fn(*args, **kwargs)
            if self.lock.exists():
                self.seen.append(self.lock.read_text())
            return out
        return call


def test_a_lock_is_born_holding_its_owner(tmp_path, monkeypatch):
    lock = locks.lock_path(tmp_path, "run1")
    watched = _Watched(lock)
    with Locks(tmp_path) as c:
        monkeypatch.setattr(locks, "os", watched)
        assert c.acquire("run1")
        monkeypatch.undo()
    assert watched.seen, "the lock never appeared"
    for text in watched.seen:  # never empty or half-written, as another sweep could read it
        assert json.loads(text)["pid"] == os.getpid()


def test_only_the_owner_releases_a_claim(tmp_path):
    with Locks(tmp_path) as a, Locks(tmp_path) as b:
        assert a.acquire("run1")
        lock = locks.lock_path(tmp_path, "run1")
        # a's claim went stale (its host stopped its heartbeat) and b took it over
        lock.write_text(json.dumps({**json.loads(lock.read_text()), "host": "elsewhere"}))
        old = time.time() - locks.STALE_S - 1
        os.utime(lock, (old, old))
        assert b.acquire("run1")
        a.release("run1")
        assert lock.exists() and not a.acquire("run1")  # b still holds it
        b.release("run1")
        assert not lock.exists()


def test_a_stale_claim_is_taken_over_by_exactly_one_claimant(tmp_path, monkeypatch):
    """b finds the lock stale, is descheduled while a takes it over, then goes on."""
    import threading
    from pathlib import Path

    lock = locks.lock_path(tmp_path, "run1")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "since": 0}))
    old = time.time() - locks.STALE_S - 1
    os.utime(lock, (old, old))
    b_looked, a_done, real_stat = threading.Event(), threading.Event(), Path.stat

    def stat(self, *args, **kwargs):
        out = real_stat(self, *args, **kwargs)
        if self == lock and threading.current_thread().name == "b" and not b_looked.is_set():
            b_looked.set()
            a_done.wait(10)
        return out

    monkeypatch.setattr(Path, "stat", stat)
    a, b, won = Locks(tmp_path), Locks(tmp_path), {}

    def take_a():
        b_looked.wait(10)
        won["a"] = a.acquire("run1")
        a_done.set()

    threads = [threading.Thread(target=take_a), threading.Thread(target=lambda: won.update(b=b.acquire("run1")),
                                                                   name="b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monkeypatch.undo()
    assert won == {"a": True, "b": False}
    assert json.loads(lock.read_text())["token"] == a.token
