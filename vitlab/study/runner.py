"""One run from its validated config to its record: its model started (from its seed or its
pretrained run's weights), trained, and recorded with its weights. `vitlab train` and the train
notebook (so every sweep) go this one way; the results store only stores."""
from __future__ import annotations

from pathlib import Path

import torch

from vitlab.run import train
from vitlab.run.config import RunConfig
from vitlab.run.models import build_model, fine_tune_from
from vitlab.study import results


def run(cfg: RunConfig, results_dir: str | Path, progress: bool = True, checkpoint_every: int | None = None,
        keep_checkpoint: bool = False, log_with: str | tuple | None = None,
        project: str | None = None) -> tuple[train.TrainResult, dict | None]:
    """Train cfg's run and record it in results_dir; a run that finds its checkpoint resumes.
    log_with's trackers log it under project (a sweep's name) into results_dir/logs.
    Under `accelerate launch` every process trains its share and process 0 records (the others
    return no record)."""
    from accelerate import PartialState

    out = Path(results_dir)
    model = start_model(out, cfg)
    result = train.fit(cfg, model, progress=progress, checkpoint_dir=results.checkpoint_dir(out, cfg.run_id),
                       checkpoint_every=checkpoint_every, log_with=log_with, log_dir=out / "logs", project=project)
    record = finish(out, cfg, model, result, keep_checkpoint) if PartialState().is_main_process else None
    return result, record


def start_model(results_dir: str | Path, cfg: RunConfig) -> torch.nn.Module:
    """A run's model, initialised from its seed, or from its pretrained run's weights."""
    model = build_model(cfg)
    if cfg.pretrained:
        fine_tune_from(model, results.pretrained_weights(results_dir, cfg.pretrained), f"run {cfg.pretrained}")
    return model


def finish(results_dir: str | Path, cfg: RunConfig, model: torch.nn.Module, result: train.TrainResult,
           keep_checkpoint: bool = False) -> dict:
    """Record a finished run: its weights first (a record means its weights exist), then the
    record; its checkpoint goes, as the record and weights hold what it was kept for."""
    if result.status == "ok":
        results.save_weights(results_dir, cfg.run_id, model)
    record = results.make_record(cfg, result)
    results.write(results_dir, record)
    if not keep_checkpoint:
        results.drop_checkpoint(results_dir, cfg.run_id)
    return record
