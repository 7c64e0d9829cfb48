"""Sweeps: expand and validate a params file, then run each config as a papermill execution."""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import queue
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from vitlab import PROJECT_ROOT, datasets, memory, notebook, results
from vitlab.claims import Claims
from vitlab.claims import holder as claims_holder
from vitlab.config import ConfigError, RunConfig, did_you_mean

TRAIN_NOTEBOOK = PROJECT_ROOT / "notebooks" / "train.ipynb"
BLOCK_KEYS = ("name", "base", "grid", "zip", "runs", "tune")
TOP_KEYS = ("name", "description", "notebook", "base", "grid", "zip", "runs", "tune", "sweeps")
# Fields a `tune:` block may move: training hyperparameters the analysis treats as a nuisance,
# choosing the best on validation at each study point and seed (never the seed itself).
TUNABLE = ("lr", "weight_decay", "warmup", "label_smoothing", "decay", "optimizer", "augment", "batch_size",
           "epochs", "steps")


class SweepError(ValueError):
    """A one-line message naming the params file, the run and the field."""


@dataclass(frozen=True)
class Plan:
    name: str
    path: Path
    notebook: Path
    runs: tuple[RunConfig, ...]
    tune: tuple[str, ...] = ()  # axes tuned per study point on validation (params `tune:` blocks)

    def default_results_dir(self) -> Path:
        return PROJECT_ROOT / "reports" / self.name


def load_plan(path: str | Path) -> Plan:
    """Read a params file and expand every run, failing on the first problem found."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise SweepError(f"{where}: no such params file")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise SweepError(f"{where}:{line} not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(spec, dict):
        raise SweepError(f"{where}: expected a mapping with keys {', '.join(TOP_KEYS)}")
    _check_keys(where, "top level", spec, TOP_KEYS)
    name = spec.get("name", path.stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise SweepError(f"{where}: name: {name!r} must be letters, digits, '_', '-' or '.'")
    notebook = Path(spec.get("notebook") or TRAIN_NOTEBOOK)
    if not notebook.is_absolute():
        notebook = PROJECT_ROOT / notebook
    if not notebook.is_file():
        raise SweepError(f"{where}: notebook: {notebook} does not exist")
    base = _mapping(where, "base", spec.get("base", {}))

    blocks = spec.get("sweeps")
    own = {k: spec[k] for k in ("grid", "zip", "runs", "tune") if k in spec}
    if blocks is None:
        blocks = [own]
    elif own:
        raise SweepError(f"{where}: put grid/zip/runs/tune inside sweeps, not beside it")
    elif not isinstance(blocks, list) or not blocks:
        raise SweepError(f"{where}: sweeps: must be a non-empty list of blocks with keys {', '.join(BLOCK_KEYS)}")

    runs: dict[str, RunConfig] = {}
    tune: list[str] = []
    for i, block in enumerate(blocks):
        label = f"sweeps[{i}]" if "sweeps" in spec else "top level"
        if not isinstance(block, dict):
            raise SweepError(f"{where}: {label}: must be a mapping with keys {', '.join(BLOCK_KEYS)}")
        _check_keys(where, label, block, BLOCK_KEYS)
        for axis in _mapping(where, f"{label}.tune", block.get("tune", {})):
            if axis not in TUNABLE:
                raise SweepError(f"{where}: {label}.tune.{axis}: not a tuning axis{did_you_mean(axis, TUNABLE)} "
                                 f"(allowed: {', '.join(TUNABLE)})")
            tune += [axis] if axis not in tune else []
        seen: set[str] = set()
        for j, values in enumerate(_expand(where, label, {**base, **_mapping(where, f"{label}.base", block.get("base", {}))}, block)):
            desc = f"{label} run {j + 1} ({describe(values, base)})"
            try:
                if isinstance(values.get("pretrained"), dict):  # the run to start from, by its fields
                    values = {**values, "pretrained": RunConfig.from_dict({**base, **values["pretrained"]}).run_id}
                cfg = RunConfig.from_dict(values)
            except ConfigError as e:
                raise SweepError(f"{where}: {desc}: {e}") from None
            if cfg.run_id in seen:
                raise SweepError(f"{where}: {desc}: duplicate run (the same config appears twice in {label})")
            seen.add(cfg.run_id)
            # The same config from two blocks (a shared base point) is one run.
            runs.setdefault(cfg.run_id, cfg)
    # Pre-training before fine-tuning: runs that start from another run go after the rest.
    return Plan(name, path, notebook, tuple(sorted(runs.values(), key=lambda c: c.pretrained is not None)), tuple(tune))


def override(plan: Plan, values: dict) -> Plan:
    """The plan with fields set on every run (`--set`, e.g. a few steps for a smoke test); runs that
    become one are one, and a fine-tuning run follows its pre-training run to its new id."""
    renamed: dict[str, str] = {}
    runs: dict[str, RunConfig] = {}
    for cfg in plan.runs:  # pre-training runs come first
        changed = {**cfg.to_dict(), **values}
        if cfg.pretrained in renamed:
            changed["pretrained"] = renamed[cfg.pretrained]
        try:
            new = RunConfig.from_dict(changed)
        except ConfigError as e:
            raise SweepError(f"{plan.path}: run {cfg.run_id} with --set: {e}") from None
        renamed[cfg.run_id] = new.run_id
        runs.setdefault(new.run_id, new)
    return dataclasses.replace(plan, runs=tuple(runs.values()))


def _expand(where: str, label: str, base: dict, block: dict) -> list[dict]:
    grid = _mapping(where, f"{label}.grid", block.get("grid", {}))
    tune = _mapping(where, f"{label}.tune", block.get("tune", {}))
    for kind, axes in (("grid", grid), ("tune", tune)):
        for key, values in axes.items():
            if not isinstance(values, list) or not values:
                raise SweepError(f"{where}: {label}.{kind}.{key}: must be a non-empty list of values")
    zipped = _mapping(where, f"{label}.zip", block.get("zip", {}))
    lengths = set()
    for key, values in zipped.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"{where}: {label}.zip.{key}: must be a non-empty list of values")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise SweepError(f"{where}: {label}.zip: lists must have equal lengths, got "
                         + ", ".join(f"{k}={len(v)}" for k, v in zipped.items()))
    for (a, axes_a), (b, axes_b) in ((("grid", grid), ("zip", zipped)), (("tune", tune), ("zip", zipped)),
                                     (("grid", grid), ("tune", tune))):
        if set(axes_a) & set(axes_b):
            raise SweepError(f"{where}: {label}: {sorted(set(axes_a) & set(axes_b))[0]} is in both {a} and {b}")
    grid = {**grid, **tune}  # tuning axes run as a grid; the analysis picks among them per study point
    explicit = block.get("runs", [{}])
    if not isinstance(explicit, list) or not explicit:
        raise SweepError(f"{where}: {label}.runs: must be a non-empty list of mappings")
    zip_rows = [dict(zip(zipped, row)) for row in zip(*zipped.values())] or [{}]
    out = []
    for k, run in enumerate(explicit):
        run = _mapping(where, f"{label}.runs[{k}]", run)
        for combo in itertools.product(*grid.values()):
            for row in zip_rows:
                out.append({**base, **run, **dict(zip(grid, combo)), **row})
    return out


def _mapping(where: str, label: str, value) -> dict:
    if not isinstance(value, dict):
        raise SweepError(f"{where}: {label}: must be a mapping, got {type(value).__name__}")
    return value


def _check_keys(where: str, label: str, spec: dict, allowed) -> None:
    for key in spec:
        if key not in allowed:
            raise SweepError(f"{where}: {label}: unknown key {key!r}{did_you_mean(key, allowed)} "
                             f"(allowed: {', '.join(allowed)})")


def describe(values: dict, base: dict) -> str:
    """The fields of values that differ from base, as k=v text."""
    changed = {k: v for k, v in values.items() if base.get(k) != v and v is not None} or values
    return ", ".join(f"{k}={v}" for k, v in changed.items())


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N): the I-th of N slices, I counted from 0 as SLURM array task ids are."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 0 <= int(m[1]) < int(m[2]):
        raise SweepError(f"--shard: {text!r} must be I/N with 0 <= I < N, e.g. 0/4")
    return int(m[1]), int(m[2])


def shard(runs: tuple[RunConfig, ...], index: int, count: int) -> tuple[RunConfig, ...]:
    """Every count-th run from index: disjoint slices that together cover the plan, each balanced."""
    return runs[index::count]


def execute(plan: Plan, results_dir: str | Path | None = None, progress: bool = True,
            retry_failed: bool = False, fail_fast: bool = False,
            shard_spec: tuple[int, int] = (0, 1), workers: int = 1,
            fresh_kernels: bool = False, checkpoint_every: int | None = None) -> dict[str, int]:
    """Run every planned config (of this shard) not yet recorded; returns counts by outcome.

    Runs already recorded in results_dir, by this sweep or any other, are skipped. A run that
    another live sweep holds, or whose pre-training run is not recorded yet, is deferred: the
    sweep trains the rest, then waits for those records, taking over a run whose holder died
    and training a pre-training run that no live sweep holds (e.g. another shard's, not yet
    started). A sweep returns once every run of its shard is recorded.
    """
    results_dir = Path(results_dir or plan.default_results_dir()).resolve()
    runs = shard(plan.runs, *shard_spec)
    for name in sorted({cfg.dataset for cfg in runs}):  # before anything trains
        try:
            datasets.spec(name).check_available()
        except datasets.DatasetMissing as e:
            raise SweepError(f"{plan.path}: {e}") from None
    planned = {cfg.run_id: cfg for cfg in plan.runs}
    for cfg in runs:
        if cfg.pretrained and cfg.pretrained not in planned and not results.weights_path(results_dir, cfg.pretrained).is_file():
            raise SweepError(f"{plan.path}: run {cfg.run_id}: pretrained: run {cfg.pretrained} is neither in this "
                             f"sweep nor recorded with weights in {results_dir}")
    for cfg in runs:  # a run that cannot fit its device is refused before any run trains
        try:
            memory.check(cfg)
        except ConfigError as e:
            raise SweepError(f"{plan.path}: {e}") from None
    notebooks_dir = results_dir / "notebooks"  # created only once the plan has passed its checks
    notebooks_dir.mkdir(parents=True, exist_ok=True)
    results.add_tune_axes(results_dir, plan.tune)
    results.keep_params(results_dir, plan.path)
    counts = {"ok": 0, "skipped": 0, "failed": 0, "diverged": 0}
    kernels = _kernels(plan, workers, fresh_kernels)
    bar = tqdm(total=len(runs), desc=plan.name, unit="run", disable=not progress)
    started = time.time()

    def wanted(run_id: str) -> bool:
        record = results.read(results_dir, run_id)
        # With retry_failed, a run failed before this sweep began is to be run again.
        return record is None or (retry_failed and record["status"] == "failed"
                                  and results.record_path(results_dir, run_id).stat().st_mtime < started)

    def run_one(cfg: RunConfig) -> tuple[RunConfig, str, dict | None, float]:
        if not wanted(cfg.run_id):
            claims.clear_stale(cfg.run_id)  # left by a sweep killed between record and release
            return cfg, "skipped", None, 0.0
        if cfg.pretrained in planned and wanted(cfg.pretrained):
            return cfg, "deferred", None, 0.0
        if not claims.acquire(cfg.run_id):
            return cfg, "deferred", None, 0.0
        begun = time.perf_counter()
        kernel = kernels.get()
        try:
            # Finished between our first look and the claim, by a sweep that has since let go.
            if not wanted(cfg.run_id):
                return cfg, "skipped", None, 0.0
            pre = results.read(results_dir, cfg.pretrained) if cfg.pretrained else None
            if pre is not None and pre["status"] != "ok":
                record = results.make_record(cfg, status="failed", error=f"pretrained run {cfg.pretrained} "
                                             f"{pre['status']}: {pre.get('error') or 'no weights'}")
                results.write(results_dir, record)
                return cfg, "ran", record, 0.0
            record = _train(plan, cfg, results_dir, notebooks_dir, kernel, checkpoint_every)
            return cfg, "ran", record, time.perf_counter() - begun
        finally:
            kernels.put(kernel)
            claims.release(cfg.run_id)

    with Claims(results_dir) as claims, contextlib.ExitStack() as stack:
        # One pool for the whole sweep, as a kernel dies with the thread that started it; the
        # kernels are closed before the pool's threads end.
        pool = stack.enter_context(ThreadPoolExecutor(workers)) if workers > 1 else None
        for kernel in list(kernels.queue):
            stack.enter_context(kernel)
        pending, said = list(runs), None
        while pending:
            deferred = []
            for cfg, outcome, record, seconds in _map(run_one, pending, pool):
                if outcome == "deferred":
                    deferred.append(cfg)
                    continue
                bar.update()
                if outcome != "ran":
                    counts[outcome] += 1
                    continue
                counts[record["status"]] = counts.get(record["status"], 0) + 1
                accuracy = record.get("test_accuracy")
                bar.write(f"{cfg.run_id} {record['status']:>8} {describe(cfg.to_dict(), RunConfig().to_dict())}"
                          + (f"  acc={accuracy:.3f}" if accuracy is not None else "") + f"  ({seconds:.1f} s)")
                if fail_fast and record["status"] == "failed":
                    bar.close()
                    raise SweepError(f"{plan.path}: run {cfg.run_id} failed: {record['error']}")
            pending = _next_pass(deferred, planned, results_dir, wanted, bar)
            if pending and len(deferred) == len(pending) and set(deferred) == set(pending):
                waiting = _waiting_line(pending, results_dir)
                if waiting != said:
                    bar.write(waiting)
                    said = waiting
                time.sleep(POLL_S)  # nothing could start: wait for other sweeps' records
    bar.close()
    return counts


POLL_S = 2.0


def _next_pass(deferred: list[RunConfig], planned: dict[str, RunConfig], results_dir: Path, wanted, bar
               ) -> list[RunConfig]:
    """The deferred runs again, each preceded by its pre-training run where nobody has that
    in hand (not recorded, no live claim, not deferred here): this sweep trains it itself."""
    out: list[RunConfig] = []
    for cfg in deferred:
        pre = planned.get(cfg.pretrained)
        if (pre is not None and pre not in deferred and pre not in out and wanted(pre.run_id)
                and claims_holder(results_dir, pre.run_id) is None):
            out.append(pre)
            bar.total += 1
        out.append(cfg)
    return out


def _waiting_line(pending: list[RunConfig], results_dir: Path) -> str:
    holders = sorted({f"{h['host']}:{h['pid']}" for h in (claims_holder(results_dir, c.run_id) for c in pending) if h})
    return (f"waiting for {len(pending)} run(s): held by {', '.join(holders) or 'nobody'}"
            f" or waiting for their pre-training run")


def _train(plan: Plan, cfg: RunConfig, results_dir: Path, notebooks_dir: Path, kernel: notebook.Kernel,
           checkpoint_every: int | None = None) -> dict:
    """One papermill execution of the plan's notebook; its record, or a failed record on error."""
    try:
        kernel.execute(plan.notebook, notebooks_dir / f"{cfg.run_id}.ipynb",
                       {**cfg.to_dict(), "results_dir": str(results_dir), "progress": False,
                        "checkpoint_every": checkpoint_every})
        record = results.read(results_dir, cfg.run_id)
        if record is None:
            raise RuntimeError("the notebook finished without writing a record")
        return record
    except Exception as e:  # a failed run is recorded; the sweep goes on
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
    kernels: queue.Queue = queue.Queue()
    for k in range(workers):
        env = None
        if workers > 1 and gpus > 1:
            env = {"CUDA_VISIBLE_DEVICES": str(k % gpus)}
        elif workers > 1:  # K kernels each using every core would thrash
            env = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers))}
        kernels.put(notebook.Kernel(plan.notebook.parent, env, fresh))
    return kernels


def _one_line(e: Exception) -> str:
    ename, evalue = getattr(e, "ename", None), getattr(e, "evalue", None)
    text = f"{ename}: {evalue}" if ename else f"{type(e).__name__}: {e}"
    return " ".join(text.split())[:500]
