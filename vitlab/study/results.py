"""The results store: one JSON record per run, named by its run id."""
from __future__ import annotations

import base64
import datetime
import json
import os
import platform
import shutil
import warnings
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # loaded where weights and tables are, not where the command parses its arguments
    import pandas as pd
    import torch

from vitlab import PROJECT_ROOT
from vitlab.run import files
from vitlab.run.config import ADDED_FIELDS, RunConfig

# The columns every record has, in display order; config fields follow run_id and status.
METRICS = ("n_params", "flops_per_image", "train_flops", "train_exaflops", "val_accuracy", "test_accuracy",
           "fewshot_1", "fewshot_5", "fewshot_10", "fewshot_25", "linear_probe",
           "train_loss", "train_steps", "images_seen", "wall_time_s", "images_per_s", "threads", "peak_memory_gib",
           "resumed_from_step")
COLUMNS = ("run_id", "status", *(f.name for f in fields(RunConfig)), *METRICS,
           "device", "error", "notes", "finished_at")
FORMATS = ("csv", "json", "parquet")


# Where every command and notebook writes and reads when given no results directory, so that
# sweeps of several params files, single runs and notebook runs meet in one report.
DEFAULT_DIR = PROJECT_ROOT / "reports" / "results"


def resolve_dir(results_dir: str | Path | None) -> Path:
    """A notebook's results directory: relative paths are taken from the project root, wherever
    its kernel runs; None is DEFAULT_DIR."""
    path = Path(results_dir) if results_dir else DEFAULT_DIR
    return path if path.is_absolute() else PROJECT_ROOT / path


def runs_dir(results_dir: str | Path) -> Path:
    return Path(results_dir) / "runs"


def record_path(results_dir: str | Path, run_id: str) -> Path:
    return runs_dir(results_dir) / f"{run_id}.json"


def make_record(cfg: RunConfig, result=None, status: str | None = None, error: str | None = None) -> dict:
    """A flat record: the whole config, then the run's metrics (None where it has none)."""
    record = {"run_id": cfg.run_id, "status": status or result.status, **cfg.to_dict()}
    record.update(dict.fromkeys(METRICS) | {"notes": None})
    if result is not None:
        for name in METRICS:
            if hasattr(result, name):
                record[name] = getattr(result, name)
        record["train_exaflops"] = result.train_flops / 1e18
        record.update(result.transfer)
        record["test_correct"] = pack_bits(result.test_correct)
        record["history"] = result.history  # per epoch: the learning curve scaling.learning_curve fits
    record["device"] = result.device if result is not None else None
    record["error"] = error if error is not None else getattr(result, "error", None)
    record["finished_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    record["host"] = platform.node()
    return record


def accuracies(record: dict) -> str:
    """A record's accuracies, each named by its split: 'val=0.886  test=0.889' (those it has)."""
    return "  ".join(f"{split}={record[f'{split}_accuracy']:.3f}" for split in ("val", "test")
                     if record.get(f"{split}_accuracy") is not None)


def pack_bits(bits) -> str | None:
    """A boolean array as base64 text (a record's `test_correct`: 1,000 test images in 168 bytes)."""
    return None if bits is None else base64.b64encode(np.packbits(np.asarray(bits, dtype=bool))).decode()


def unpack_bits(text: str | Iterable[str], n: int) -> np.ndarray:
    """pack_bits' n booleans; of several texts, one row each, decoded at once."""
    if isinstance(text, str):
        return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8), count=n).astype(bool)
    return np.stack([np.unpackbits(np.frombuffer(base64.b64decode(t), dtype=np.uint8), count=n) for t in text]
                    ).astype(bool)


def write(results_dir: str | Path, record: dict) -> Path:
    """Write a record whole or not at all, so that a reader never sees a torn one."""
    return files.write_text(record_path(results_dir, record["run_id"]), json.dumps(record, indent=1, sort_keys=False))


def weights_path(results_dir: str | Path, run_id: str) -> Path:
    return Path(results_dir) / "weights" / f"{run_id}.pt"


def save_weights(results_dir: str | Path, run_id: str, model: torch.nn.Module) -> Path:
    """The trained model's state dict, written atomically beside the records (tensors only)."""
    import torch

    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return files.write_whole(weights_path(results_dir, run_id), lambda tmp: torch.save(weights, tmp))


def checkpoint_dir(results_dir: str | Path, run_id: str) -> Path:
    return Path(results_dir) / "checkpoints" / run_id


def drop_checkpoint(results_dir: str | Path, run_id: str) -> None:
    shutil.rmtree(checkpoint_dir(results_dir, run_id), ignore_errors=True)


def load_model(results_dir: str | Path, run_id: str) -> tuple[RunConfig, torch.nn.Module]:
    """A recorded run's config and its trained model, in eval mode on the CPU."""
    import torch

    from vitlab.run.models import build_model

    record = read_record(results_dir, run_id)
    if record is None:
        raise FileNotFoundError(f"{record_path(results_dir, run_id)}: no record of run {run_id}")
    path = weights_path(results_dir, run_id)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: run {run_id} has no saved weights (status {record['status']})")
    cfg = RunConfig.from_dict({f.name: record[f.name] for f in fields(RunConfig) if f.name in record})
    model = build_model(cfg)
    # weights_only: loading never runs code from the file.
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return cfg, model.eval()


def pretrained_weights(results_dir: str | Path, run_id: str) -> dict[str, torch.Tensor]:
    """The trained weights of a recorded run that a fine-tuning run starts from."""
    import torch

    path = weights_path(results_dir, run_id)
    if read_record(results_dir, run_id) is None or not path.is_file():
        raise FileNotFoundError(f"pretrained: run {run_id} has no record with weights in {results_dir}; "
                                "train it first (a sweep runs pre-training runs before the runs they start)")
    return torch.load(path, map_location="cpu", weights_only=True)


def with_weights(results_dir: str | Path, df: pd.DataFrame) -> pd.DataFrame:
    """The runs of df whose trained weights were saved (runs before vitlab saved them have none)."""
    return df[df["run_id"].map(lambda r: weights_path(results_dir, r).is_file()).astype(bool)]  # bool when empty


def best_run(df: pd.DataFrame, model: str | None = "vit", dataset: str | None = None) -> str | None:
    """The run id of the successful run (of one family) trained from scratch on one dataset that
    is most accurate on the validation split, or None. Validation accuracies are compared only
    within a dataset, and a fine-tuned run started from another's weights is not a candidate;
    without `dataset`, the dataset with the most such runs. Runs recorded before vitlab measured
    validation accuracy are never chosen: the test split is for reporting, not choosing."""
    ok = df[(df["status"] == "ok") & (df["model"] == model if model else True)]
    ok = ok[ok["val_accuracy"].notna()] if "val_accuracy" in ok else ok.iloc[:0]
    if "pretrained" in ok:
        ok = ok[ok["pretrained"].isna()]
    if ok.empty:
        return None
    ok = ok[ok["dataset"] == (dataset or ok["dataset"].value_counts().index[0])]
    return None if ok.empty else ok.loc[ok["val_accuracy"].astype(float).idxmax(), "run_id"]


TUNE_FILE = "tune.json"


def tune_axes(results_dir: str | Path) -> tuple[str, ...]:
    """The fields tuned per study point in this results directory (from params `tune:` blocks)."""
    path = Path(results_dir) / TUNE_FILE
    return tuple(json.loads(path.read_text())["axes"]) if path.is_file() else ()


def add_tune_axes(results_dir: str | Path, axes) -> None:
    """Remember a sweep's tuning axes beside its records, added to those of earlier sweeps."""
    known = tune_axes(results_dir)
    merged = [*known, *(a for a in axes if a not in known)]
    if len(merged) > len(known):
        files.write_text(Path(results_dir) / TUNE_FILE, json.dumps({"axes": merged}))


PARAMS_DIR = "params"


def keep_params(results_dir: str | Path, params: str | Path) -> None:
    """A copy of a sweep's params file beside its records, for the report to name what it covers."""
    params = Path(params)
    files.write_whole(Path(results_dir) / PARAMS_DIR / params.name, lambda tmp: shutil.copyfile(params, tmp))


def kept_params(results_dir: str | Path) -> list[str]:
    folder = Path(results_dir) / PARAMS_DIR
    return sorted(p.name for p in folder.glob("*.y*ml")) if folder.is_dir() else []


class DamagedRecord(ValueError):
    """A file in runs/ that is not a readable record of the run its name says."""


def parse_record(path: Path) -> dict:
    """The record in path; DamagedRecord saying what is wrong where it is empty, torn, not JSON,
    not a record, or the record of another run."""
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DamagedRecord("not text") from None
    if not text.strip():
        raise DamagedRecord("empty file")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise DamagedRecord(f"not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(record, dict):
        raise DamagedRecord(f"a JSON {type(record).__name__}, not a record")
    missing = [k for k in ("run_id", "status", "model") if k not in record]
    if missing:
        raise DamagedRecord(f"not a vitlab record (no {', '.join(missing)})")
    if record["run_id"] != path.stem:
        raise DamagedRecord(f"holds run {record['run_id']}, not {path.stem}")
    return record


def damaged(results_dir: str | Path) -> list[tuple[Path, str]]:
    """Each file in runs/ that no command reads as a record, with what is wrong with it."""
    bad = []
    for path in sorted(runs_dir(results_dir).glob("*.json")):
        try:
            parse_record(path)
        except DamagedRecord as e:
            bad.append((path, str(e)))
    return bad


class DamagedRecordWarning(UserWarning):
    """A damaged file in runs/ was skipped or set aside (one line per file)."""


def _warn(path: Path, problem: str, action: str) -> None:
    warnings.warn(f"{path}: {problem}; {action}", DamagedRecordWarning, stacklevel=3)


def set_aside(path: Path) -> Path:
    """Move a damaged record out of the way, as NAME.bad (NAME.bad2, ... if taken): kept for a
    person to look at, never read as a record again."""
    for n in range(1, 1000):
        target = path.with_name(f"{path.name}.bad{n if n > 1 else ''}")
        if not target.exists():
            os.replace(path, target)
            return target
    raise FileExistsError(f"{path}: too many damaged copies set aside already")


def read_record(results_dir: str | Path, run_id: str, on_damaged: str = "warn") -> dict | None:
    """A run's record, or None where it has none. A damaged record counts as none: with a
    warning ("warn"), silently ("ignore"), or moved aside first ("set aside": a sweep about to
    train the run again, holding its claim)."""
    path = record_path(results_dir, run_id)
    try:
        return parse_record(path)
    except FileNotFoundError:
        return None
    except DamagedRecord as e:
        if on_damaged == "warn":
            _warn(path, str(e), "treated as not recorded")
        elif on_damaged == "set aside":
            try:
                kept = set_aside(path)
            except FileNotFoundError:  # set aside meanwhile, by a sweep that held the claim before
                return read_record(results_dir, run_id, on_damaged)
            _warn(path, str(e), f"set aside as {kept.name}; the run is trained again")
        return None


def load_table(results_dir: str | Path, warn: bool = True) -> pd.DataFrame:
    """All records of a results directory as one tidy DataFrame, one row per run. Damaged files
    are left out, each named in a DamagedRecordWarning (unless warn is False; `damaged` lists them)."""
    import pandas as pd

    records = []
    for path in sorted(runs_dir(results_dir).glob("*.json")):
        try:
            # A record written before a field existed ran with that field's default.
            records.append(ADDED_FIELDS | parse_record(path))
        except (DamagedRecord, FileNotFoundError) as e:  # a damaged file, or one set aside meanwhile
            if warn and isinstance(e, DamagedRecord):
                _warn(path, str(e), "skipped")
    df = pd.DataFrame(records)
    for column in COLUMNS:
        if column not in df:
            df[column] = None
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[list(COLUMNS) + extra].sort_values(["model", "run_id"], ignore_index=True)


# Integer fields: a column of them with gaps (heads of a ResNet) is float in pandas, and would be
# written as 2.0; they are written as integers.
INTEGERS = (*(f.name for f in fields(RunConfig) if "int" in str(f.type).split(" | ")),
            "n_params", "flops_per_image", "train_steps", "images_seen", "threads", "resumed_from_step")


# What a terminal table shows beside the fields that vary: outcome, accuracies, cost.
SHOWN = ("status", "val_accuracy", "test_accuracy", "n_params", "train_flops", "wall_time_s")


def terminal_table(df: pd.DataFrame) -> str:
    """The runs as a table to read: the config fields that vary across them, then outcome,
    accuracies and cost, sorted by the varying fields."""
    config = [f.name for f in fields(RunConfig)]
    varying = [c for c in config if c in df and df[c].astype(str).nunique() > 1]
    table = df[["run_id", *varying, *(c for c in SHOWN if c in df)]].sort_values(varying or ["run_id"])
    table = table.astype({c: "Int64" for c in INTEGERS if c in table and table[c].dtype.kind in "fiu"}
                         | {"train_flops": float})
    return table.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.3g}")


def export(df: pd.DataFrame, fmt: str, path=None):
    """Write df as csv, json (records) or parquet; to a string when path is None (not parquet).
    Integer fields are written as integers."""
    df = df.astype({c: "Int64" for c in INTEGERS if c in df and df[c].dtype.kind in "fiu"})
    if fmt == "csv":
        return df.to_csv(path, index=False)
    if fmt == "json":
        return df.to_json(path, orient="records", indent=1)
    if fmt == "parquet":
        return df.to_parquet(path, index=False)
    raise ValueError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
