"""Stopping a run cleanly on a scheduler's signal: SIGUSR1 (SLURM's warning, `sbatch
--signal=USR1@SECONDS`) or SIGTERM (a time limit, a preemption, torch's launcher passing either on)
makes training save its checkpoint at its next step and stop with `Stopped`, so that the same
command run again (a requeued job) resumes to the uninterrupted run's result. No torch here: the
command line catches Stopped without loading it."""
from __future__ import annotations

import contextlib
import signal
import threading

SIGNALS = (signal.SIGUSR1, signal.SIGTERM)
# The exit status of a run stopped this way: EX_TEMPFAIL, "try again", which the SLURM scripts requeue on.
EXIT_STOPPED = 75


class Stopped(Exception):
    """A run stopped by a signal after saving its checkpoint; running it again resumes it."""


_flag: dict | None = None  # the flag of the outermost caught() in force: nested ones share it


@contextlib.contextmanager
def caught(enabled: bool = True):
    """While training: SIGUSR1 and SIGTERM set the yielded flag's "signal" (its name) instead of
    ending the process; the handlers before are put back after. Nested (`vitlab train` catches
    from its start, so that a warning during start-up is kept for the first step), it yields the
    outer flag. Python lets only the main thread set handlers, so elsewhere (a thread of a sweep)
    the signals keep their usual effect."""
    global _flag
    if _flag is not None:
        yield _flag
        return
    flag = {"signal": None}
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def note(number, _frame):
        flag["signal"] = signal.Signals(number).name

    before = {s: signal.signal(s, note) for s in SIGNALS}
    _flag = flag
    try:
        yield flag
    finally:
        _flag = None
        for s, handler in before.items():
            signal.signal(s, handler)
