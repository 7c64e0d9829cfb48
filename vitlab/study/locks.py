"""Locks on runs in a shared results directory, so that concurrent sweeps never train one run twice.

A claim is a lock file `runs/<run_id>.lock` naming its claimant (host, pid and a token of its
own). It is written whole to a file of the claimant's own and then hard-linked into place, so
it never exists empty, and link(2) is atomic on local and NFS filesystems alike (O_EXCL is not
on old NFS clients). Its holder touches it every HEARTBEAT_S seconds. A claim is stale once
its heartbeat is older than STALE_S, or at once when its holder is a dead process on this
host; a stale claim is taken over by the one claimant that first links a breaker file named
for that claim's contents, and only the claimant named in a lock removes it.

Hand-written rather than flufl.lock: flufl.lock also links, but its stale-lock breaking is,
by its own comments, racy (two breakers can both win), and a lock of a killed process there
lasts its whole lifetime where here a dead process on the same host frees its runs at once.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
import time
import uuid
from pathlib import Path

from vitlab.study import results

HEARTBEAT_S = 30.0
STALE_S = 300.0


def lock_path(results_dir: str | Path, run_id: str) -> Path:
    return results.runs_dir(results_dir) / f"{run_id}.lock"


def _read(path: Path) -> tuple[bytes, float] | None:
    """A lock's bytes and the age of its heartbeat, or None when there is no lock."""
    try:
        return path.read_bytes(), time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None


def _live(body: bytes, age: float) -> dict | None:
    """The holder a lock names if that holder is live, else None."""
    try:
        info = json.loads(body)
    except ValueError:
        info = {}
    if age >= STALE_S or not isinstance(info, dict):
        return None
    if info.get("host") == platform.node() and not _alive(info.get("pid", -1)):
        return None
    return info


def holder(results_dir: str | Path, run_id: str) -> dict | None:
    """Who holds a live claim on run_id, or None."""
    lock = _read(lock_path(results_dir, run_id))
    return _live(*lock) if lock else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _link(source: Path, target: Path) -> bool:
    """Hard-link source as target; False when target exists."""
    try:
        os.link(source, target)
        return True
    except FileExistsError:
        return False
    except OSError:  # NFS: the reply can be lost after the link was made
        return os.stat(source).st_nlink == 2


class Locks:
    """The locks this process holds in one results directory, kept fresh by a heartbeat thread."""

    def __init__(self, results_dir: str | Path):
        self.results_dir = Path(results_dir)
        self.token = uuid.uuid4().hex  # two Locks of one process are two claimants
        self.held: set[str] = set()
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, daemon=True)

    def __enter__(self) -> Locks:
        results.runs_dir(self.results_dir).mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for run_id in list(self.held):
            self.release(run_id)

    def acquire(self, run_id: str) -> bool:
        """Claim run_id; False when another live claimant holds it."""
        path = lock_path(self.results_dir, run_id)
        body = json.dumps({"host": platform.node(), "pid": os.getpid(), "token": self.token,
                           "since": time.time()}).encode()
        mine = path.with_name(f".{path.name}.{self.token}")
        mine.write_bytes(body)
        try:
            for _ in range(3):  # a lock that vanishes between the link and the read: try again
                if _link(mine, path):
                    return self._took(run_id)
                lock = _read(path)
                if lock is None:
                    continue
                if _live(*lock) is not None:
                    return False
                return self._take_over(run_id, path, mine, lock[0])
            return False
        finally:
            mine.unlink(missing_ok=True)

    def _take_over(self, run_id: str, path: Path, mine: Path, stale: bytes) -> bool:
        """Replace a stale lock with ours, unless another claimant is already doing so."""
        breaker = path.with_name(f"{path.name}.break-{hashlib.sha1(stale).hexdigest()[:16]}")
        if not _link(mine, breaker):
            other = _read(breaker)
            if other is not None and _live(*other) is None:  # its maker died mid-takeover
                breaker.unlink(missing_ok=True)
            return False
        try:
            # Holding the breaker, only we may replace this stale lock; check it is still the one.
            if (_read(path) or (None,))[0] != stale:
                return False
            os.replace(mine, path)
            return self._took(run_id)
        finally:
            breaker.unlink(missing_ok=True)

    def _took(self, run_id: str) -> bool:
        with self._mutex:
            self.held.add(run_id)
        return True

    def clear_stale(self, run_id: str) -> None:
        """Remove a dead claimant's lock on a run that needs no claim (it is recorded)."""
        if self.acquire(run_id):
            self.release(run_id)

    def release(self, run_id: str) -> None:
        """Remove our lock on run_id; a lock that another claimant has taken over stays.

        Between reading and removing, only a claimant that found ours stale could replace it,
        and ours is not stale while this process runs its heartbeat.
        """
        with self._mutex:
            self.held.discard(run_id)
        path = lock_path(self.results_dir, run_id)
        lock = _read(path)
        if lock is not None and _token(lock[0]) == self.token:
            path.unlink(missing_ok=True)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with self._mutex:
                held = list(self.held)
            for run_id in held:
                try:
                    os.utime(lock_path(self.results_dir, run_id))
                except FileNotFoundError:
                    pass


def _token(body: bytes) -> str | None:
    try:
        return json.loads(body).get("token")
    except (ValueError, AttributeError):
        return None
