"""Sweeps: each run of a plan not yet recorded, executed through the train notebook with papermill,
by as many workers and shards as share its results directory."""
from __future__ import annotations

import contextlib
import os
import queue
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm.auto import tqdm

from vitlab.run import memory
from vitlab.run.config import ConfigError, RunConfig
from vitlab.study import kernels, results
from vitlab.study.locks import Locks
from vitlab.study.locks import holder as lock_holder
from vitlab.study.plans import Plan, SweepError, describe, missing_data, shard


def run_sweep(plan: Plan, results_dir: str | Path | None = None, progress: bool = True,
              retry_failed: bool = False, fail_fast: bool = False,
              shard_spec: tuple[int, int] = (0, 1), workers: int = 1,
              fresh_kernels: bool = False, checkpoint_every: int | None = None,
              log_with: tuple[str, ...] = ()) -> dict[str, int]:
    """Run every planned config (of this shard) not yet recorded; returns counts by outcome.

    Runs already recorded in results_dir, by this sweep or any other, are skipped. A run that
    another live sweep holds, or whose pre-training run is not recorded yet, is deferred: the
    sweep trains the rest, then waits for those records, taking over a run whose holder died
    and training a pre-training run that no live sweep holds (e.g. another shard's, not yet
    started). A sweep returns once every run of its shard is recorded.
    """
    results_dir = Path(results_dir or results.DEFAULT_DIR).resolve()
    runs = shard(plan.runs, *shard_spec)
    _check(plan, runs, results_dir)  # before anything trains
    (results_dir / "notebooks").mkdir(parents=True, exist_ok=True)  # only once the plan has passed
    results.add_tune_axes(results_dir, plan.tune)
    results.keep_params(results_dir, plan.path)
    counts = {"ok": 0, "skipped": 0, "failed": 0, "diverged": 0}
    usual = plan_base(plan)  # each run's line shows what sets it apart in this sweep
    idle = _kernels(plan, workers, fresh_kernels)
    bar = tqdm(total=len(runs), desc=plan.name, unit="run", disable=not progress)
    with Locks(results_dir) as locks, contextlib.ExitStack() as stack:
        # Each run's trackers log it in the sweep's project (tracking), named by its run id.
        options = {"checkpoint_every": checkpoint_every, "log_with": ",".join(log_with) or None, "log_project": plan.name}
        runner = _Runner(plan, results_dir, locks, idle, retry_failed, options)
        # One pool for the whole sweep, as a kernel dies with the thread that started it; the
        # kernels are closed before the pool's threads end.
        pool = stack.enter_context(ThreadPoolExecutor(workers)) if workers > 1 else None
        for kernel in list(idle.queue):
            stack.enter_context(kernel)
        pending, said, done = list(runs), None, 0  # done: counted here, as a bar not drawn counts nothing
        while pending:
            deferred = []
            for cfg, outcome, record, seconds in _map(runner.run, pending, pool):
                if outcome == "deferred":
                    deferred.append(cfg)
                    continue
                bar.update()
                done += 1
                if outcome != "ran":
                    counts[outcome] += 1
                    continue
                counts[record["status"]] = counts.get(record["status"], 0) + 1
                named = results.accuracies(record)
                bar.write(f"{cfg.run_id} {record['status']:>8} {_differs(cfg, usual)}{'  ' + named if named else ''}"
                          f"  ({seconds:.1f} s; {_progress(done, bar.total, runner.started)})")
                if fail_fast and record["status"] == "failed":
                    bar.close()
                    raise SweepError(f"{plan.path}: run {cfg.run_id} failed: {record['error']}")
            pending = _next_pass(deferred, runner.planned, results_dir, runner.wanted, bar)
            if pending and len(deferred) == len(pending) and set(deferred) == set(pending):
                waiting = _waiting_line(pending, results_dir)
                if waiting != said:
                    bar.write(waiting)
                    said = waiting
                time.sleep(POLL_S)  # nothing could start: wait for other sweeps' records
    bar.close()
    return counts


def _check(plan: Plan, runs: tuple[RunConfig, ...], results_dir: Path) -> None:
    """Refuse the sweep before any run trains: missing data, a run to start from that is nowhere,
    a run that cannot fit its device."""
    for line in missing_data(plan, runs):
        raise SweepError(line)
    planned = {cfg.run_id for cfg in plan.runs}
    for cfg in runs:
        if cfg.pretrained and cfg.pretrained not in planned and not results.weights_path(results_dir, cfg.pretrained).is_file():
            raise SweepError(f"{plan.path}: run {cfg.run_id}: pretrained: run {cfg.pretrained} is neither in this "
                             f"sweep nor recorded with weights in {results_dir}")
    for cfg in runs:
        try:
            memory.check(cfg)
        except ConfigError as e:
            raise SweepError(f"{plan.path}: {e}") from None


class _Runner:
    """One run of a sweep at a time, from any worker thread: skipped when recorded, deferred when
    another sweep holds it or its pre-training run is not recorded, else trained under its lock
    in an idle kernel."""

    def __init__(self, plan: Plan, results_dir: Path, locks: Locks, idle: queue.Queue, retry_failed: bool,
                 options: dict):
        self.plan, self.results_dir, self.locks, self.idle = plan, results_dir, locks, idle
        self.retry_failed, self.options = retry_failed, options
        self.planned = {cfg.run_id: cfg for cfg in plan.runs}
        self.started = time.time()

    def wanted(self, run_id: str, claimed: bool = False) -> bool:
        # A damaged record is a run not recorded; the sweep that holds the run's lock sets it aside.
        record = results.read_record(self.results_dir, run_id, "set aside" if claimed else "ignore")
        # With retry_failed, a run failed before this sweep began is to be run again.
        return record is None or (self.retry_failed and record["status"] == "failed"
                                  and results.record_path(self.results_dir, run_id).stat().st_mtime < self.started)

    def run(self, cfg: RunConfig) -> tuple[RunConfig, str, dict | None, float]:
        if not self.wanted(cfg.run_id):
            self.locks.clear_stale(cfg.run_id)  # left by a sweep killed between record and release
            return cfg, "skipped", None, 0.0
        if cfg.pretrained in self.planned and self.wanted(cfg.pretrained):
            return cfg, "deferred", None, 0.0
        if not self.locks.acquire(cfg.run_id):
            return cfg, "deferred", None, 0.0
        begun = time.perf_counter()
        kernel = self.idle.get()
        try:
            # Finished between our first look and the lock, by a sweep that has since let go.
            if not self.wanted(cfg.run_id, claimed=True):
                return cfg, "skipped", None, 0.0
            pre = results.read_record(self.results_dir, cfg.pretrained) if cfg.pretrained else None
            if pre is not None and pre["status"] != "ok":
                record = results.make_record(cfg, status="failed", error=f"pretrained run {cfg.pretrained} "
                                             f"{pre['status']}: {pre.get('error') or 'no weights'}")
                results.write(self.results_dir, record)
                return cfg, "ran", record, 0.0
            record = _train(self.plan, cfg, self.results_dir, kernel, self.options)
            return cfg, "ran", record, time.perf_counter() - begun
        finally:
            self.idle.put(kernel)
            self.locks.release(cfg.run_id)


POLL_S = 2.0


def plan_base(plan: Plan) -> dict:
    """Each field's most common value among the plan's runs: a run's line shows where it differs."""
    configs = [cfg.to_dict() for cfg in plan.runs]
    return {k: Counter(c[k] for c in configs).most_common(1)[0][0] for k in configs[0]}


def _progress(done: int, total: int, started: float) -> str:
    """n/N done, time so far and, from it, the time left: the progress bar's story on a run's line,
    for a log or pipe where the bar itself is not drawn."""
    elapsed = time.time() - started
    left = elapsed / max(done, 1) * (total - done)
    return f"{done}/{total} done, {_clock(elapsed)} so far, about {_clock(left)} left"


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"


def _differs(cfg: RunConfig, usual: dict) -> str:
    values = cfg.to_dict()
    return describe(values, usual) if any(v != usual[k] and v is not None for k, v in values.items()) else "-"


def _next_pass(deferred: list[RunConfig], planned: dict[str, RunConfig], results_dir: Path, wanted, bar
               ) -> list[RunConfig]:
    """The deferred runs again, each preceded by its pre-training run where nobody has that
    in hand (not recorded, no live claim, not deferred here): this sweep trains it itself."""
    out: list[RunConfig] = []
    for cfg in deferred:
        pre = planned.get(cfg.pretrained)
        if (pre is not None and pre not in deferred and pre not in out and wanted(pre.run_id)
                and lock_holder(results_dir, pre.run_id) is None):
            out.append(pre)
            bar.total += 1
        out.append(cfg)
    return out


def _waiting_line(pending: list[RunConfig], results_dir: Path) -> str:
    holders = sorted({f"{h['host']}:{h['pid']}" for h in (lock_holder(results_dir, c.run_id) for c in pending) if h})
    return (f"waiting for {len(pending)} run(s): held by {', '.join(holders) or 'nobody'}"
            f" or waiting for their pre-training run")


def _train(plan: Plan, cfg: RunConfig, results_dir: Path, kernel: kernels.Kernel, options: dict | None = None) -> dict:
    """One papermill execution of the plan's notebook (options: its other parameters, e.g.
    checkpoint_every); its record, or a failed record on error."""
    try:
        kernel.execute(plan.notebook, results_dir / "notebooks" / f"{cfg.run_id}.ipynb",
                       {**cfg.to_dict(), "results_dir": str(results_dir), "progress": False, **(options or {})})
        record = results.read_record(results_dir, cfg.run_id)
        if record is None:
            raise RuntimeError("the notebook finished without writing a record")
        return record
    except Exception as e:  # a failed run is recorded; the sweep goes on
        if getattr(e, "ename", None) == "Stopped":  # signals.Stopped in the kernel: checkpointed, not failed
            raise
        record = results.make_record(cfg, status="failed", error=_one_line(e))
        results.write(results_dir, record)
        return record


def _map(fn, items, pool: ThreadPoolExecutor | None):
    """fn over items, yielding results as they finish; in this thread without a pool so that
    Ctrl-C stops the run in progress at once."""
    if pool is None:
        yield from map(fn, items)
        return
    futures = [pool.submit(fn, item) for item in items]  # each run is its own kernel process
    try:
        for future in as_completed(futures):
            yield future.result()
    finally:
        for future in futures:
            future.cancel()


def _kernels(plan: Plan, workers: int, fresh: bool) -> queue.Queue:
    """One kernel per worker: each its own GPU when there are several, else a share of the CPU cores."""
    import torch

    gpus = torch.cuda.device_count()
    idle: queue.Queue = queue.Queue()
    for k in range(workers):
        env = None
        if workers > 1 and gpus > 1:
            env = {"CUDA_VISIBLE_DEVICES": str(k % gpus)}
        elif workers > 1:  # K kernels each using every core would thrash
            env = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers))}
        idle.put(kernels.Kernel(plan.notebook.parent, env, fresh))
    return idle


def _one_line(e: Exception) -> str:
    ename, evalue = getattr(e, "ename", None), getattr(e, "evalue", None)
    text = f"{ename}: {evalue}" if ename else f"{type(e).__name__}: {e}"
    return " ".join(text.split())[:500]
