"""Params files to plans: a YAML file's runs expanded (grids, zips, explicit runs, tuning axes)
and every one validated before anything trains; the slices of a plan that shards run."""
from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from vitlab import NOTEBOOKS, PROJECT_ROOT
from vitlab.run.checks import did_you_mean
from vitlab.run.config import ConfigError, RunConfig

TRAIN_NOTEBOOK = NOTEBOOKS / "train.ipynb"
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


def load_plan(path: str | Path) -> Plan:
    """Read a params file and expand every run, failing on the first problem found."""
    path = Path(path)
    where = str(path)
    spec = _read(path)
    name = spec.get("name", path.stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise SweepError(f"{where}: name: {name!r} must be letters, digits, '_', '-' or '.'")
    notebook = Path(spec.get("notebook") or TRAIN_NOTEBOOK)
    if not notebook.is_absolute():
        notebook = PROJECT_ROOT / notebook
    if not notebook.is_file():
        raise SweepError(f"{where}: notebook: {notebook} does not exist")
    base = _mapping(where, "base", spec.get("base", {}))
    runs: dict[str, RunConfig] = {}
    tune: list[str] = []
    for label, block in _blocks(where, spec):
        tune += [axis for axis in _tuned(where, label, block) if axis not in tune]
        for cfg in _block_runs(where, label, base, block):
            runs.setdefault(cfg.run_id, cfg)  # the same config from two blocks (a shared base point) is one run
    # Pre-training before fine-tuning: runs that start from another run go after the rest.
    return Plan(name, path, notebook, tuple(sorted(runs.values(), key=lambda c: c.pretrained is not None)), tuple(tune))


def _read(path: Path) -> dict:
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
    return spec


def _blocks(where: str, spec: dict) -> list[tuple[str, dict]]:
    """The file's sweep blocks with the label an error names them by: its `sweeps:` list, or
    the top level's own grid/zip/runs/tune as one block."""
    own = {k: spec[k] for k in ("grid", "zip", "runs", "tune") if k in spec}
    if "sweeps" not in spec:
        return [("top level", own)]
    blocks = spec["sweeps"]
    if own:
        raise SweepError(f"{where}: put grid/zip/runs/tune inside sweeps, not beside it")
    if not isinstance(blocks, list) or not blocks:
        raise SweepError(f"{where}: sweeps: must be a non-empty list of blocks with keys {', '.join(BLOCK_KEYS)}")
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise SweepError(f"{where}: sweeps[{i}]: must be a mapping with keys {', '.join(BLOCK_KEYS)}")
        _check_keys(where, f"sweeps[{i}]", block, BLOCK_KEYS)
    return [(f"sweeps[{i}]", block) for i, block in enumerate(blocks)]


def _tuned(where: str, label: str, block: dict) -> list[str]:
    axes = list(_mapping(where, f"{label}.tune", block.get("tune", {})))
    for axis in axes:
        if axis not in TUNABLE:
            raise SweepError(f"{where}: {label}.tune.{axis}: not a tuning axis{did_you_mean(axis, TUNABLE)} "
                             f"(allowed: {', '.join(TUNABLE)})")
    return axes


def _block_runs(where: str, label: str, base: dict, block: dict) -> list[RunConfig]:
    """One block's runs, each validated; an error names the run and blames `base` for its fields."""
    runs: dict[str, RunConfig] = {}
    block_base = {**base, **_mapping(where, f"{label}.base", block.get("base", {}))}
    for j, values in enumerate(_expand(where, label, block_base, block)):
        desc = f"{label} run {j + 1} ({describe(values, base)})"
        try:
            if isinstance(values.get("pretrained"), dict):  # the run to start from, by its fields
                values = {**values, "pretrained": RunConfig.from_dict({**base, **values["pretrained"]}).run_id}
            cfg = RunConfig.from_dict(values)
        except ConfigError as e:
            raise SweepError(f"{where}: {_blame(base, e, desc)}: {e}") from None
        if cfg.run_id in runs:
            raise SweepError(f"{where}: {desc}: duplicate run (the same config appears twice in {label})")
        runs[cfg.run_id] = cfg
    return list(runs.values())


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


def _blame(base: dict, error: ConfigError, run: str) -> str:
    """Where a run's bad field was written: `base` when base alone is refused on the same field
    (a misspelt or bad value there, not a run's), else the run."""
    try:
        RunConfig.from_dict(base)
    except ConfigError as e:
        if e.field == error.field:
            return "base"
    return run


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


def missing_data(plan: Plan, runs) -> list[str]:
    """One line for each dataset the runs need that is not on this machine (what to do about it
    included): a sweep refuses to start, a dry run says it would."""
    from vitlab.run import datasets

    lines = []
    for name in sorted({cfg.dataset for cfg in runs}):
        try:
            datasets.spec(name).check_available()
        except datasets.DatasetMissing as e:
            lines.append(f"{plan.path}: {e}")
    return lines


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N): the I-th of N slices, I counted from 0 as SLURM array task ids are."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 0 <= int(m[1]) < int(m[2]):
        raise SweepError(f"--shard: {text!r} must be I/N with 0 <= I < N, e.g. 0/4")
    return int(m[1]), int(m[2])


def shard(runs: tuple[RunConfig, ...], index: int, count: int) -> tuple[RunConfig, ...]:
    """Every count-th run from index: disjoint slices that together cover the plan, each balanced."""
    return runs[index::count]
