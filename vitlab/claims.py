"""Claims on runs in a shared results directory, so that concurrent sweeps never train one run twice.

A claim is a lock file `runs/<run_id>.lock` created with O_EXCL (atomic on local
and NFS v3+ filesystems), holding the claimant's host and pid. Its holder touches
it every HEARTBEAT_S seconds; a claim whose holder died (same host, pid gone) or
whose heartbeat stopped (another host, older than STALE_S) is taken over. No
library does this for plain directories on a shared filesystem (filelock's locks
are advisory fcntl/flock locks, unreliable on NFS), hence this module.
"""
from __future__ import annotations

import json
import os
import platform
import threading
import time
from pathlib import Path

from vitlab import results

HEARTBEAT_S = 30.0
STALE_S = 300.0


def lock_path(results_dir: str | Path, run_id: str) -> Path:
    return results.runs_dir(results_dir) / f"{run_id}.lock"


def holder(results_dir: str | Path, run_id: str) -> dict | None:
    """Who holds a live claim on run_id, or None."""
    path = lock_path(results_dir, run_id)
    try:
        info = json.loads(path.read_text())
        age = time.time() - path.stat().st_mtime
    except (FileNotFoundError, ValueError):
        return None
    if info.get("host") == platform.node():
        return info if _alive(info.get("pid", -1)) else None
    return info if age < STALE_S else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class Claims:
    """The claims this process holds in one results directory, kept fresh by a heartbeat thread."""

    def __init__(self, results_dir: str | Path):
        self.results_dir = Path(results_dir)
        self.held: set[str] = set()
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, daemon=True)

    def __enter__(self) -> Claims:
        results.runs_dir(self.results_dir).mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for run_id in list(self.held):
            self.release(run_id)

    def acquire(self, run_id: str) -> bool:
        """Claim run_id; False when another live process holds it."""
        path = lock_path(self.results_dir, run_id)
        body = json.dumps({"host": platform.node(), "pid": os.getpid(), "since": time.time()})
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if holder(self.results_dir, run_id) is not None:
                    return False
                # A dead holder's claim. Two processes taking over the same stale claim
                # at the same instant could both win; the worst case is one run trained
                # twice, still written as one whole record.
                path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(body)
            with self._mutex:
                self.held.add(run_id)
            return True
        return False

    def clear_stale(self, run_id: str) -> None:
        """Remove a dead process's claim on a run that needs no claim (it is recorded)."""
        path = lock_path(self.results_dir, run_id)
        if path.exists() and holder(self.results_dir, run_id) is None:
            path.unlink(missing_ok=True)

    def release(self, run_id: str) -> None:
        with self._mutex:
            self.held.discard(run_id)
        lock_path(self.results_dir, run_id).unlink(missing_ok=True)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with self._mutex:
                held = list(self.held)
            for run_id in held:
                try:
                    os.utime(lock_path(self.results_dir, run_id))
                except FileNotFoundError:
                    pass
