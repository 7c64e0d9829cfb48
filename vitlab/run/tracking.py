"""Experiment trackers through Accelerate: TensorBoard, Weights & Biases and MLflow. One tracker
run per vitlab run, named by its run id, inside one project (W&B) or experiment (MLflow) per
sweep, named by its params file's `name`; it holds the whole config as hyperparameters, the
per-epoch training metrics and the final accuracies, and a run that resumes from its checkpoint
continues the same tracker run."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from vitlab.run.checks import ConfigError

TRACKERS = ("tensorboard", "wandb", "mlflow")
DEFAULT_PROJECT = "vitlab"  # the project of runs trained outside a sweep (vitlab train, the notebook)
# The metrics a finished run logs once, at its last step: what its record reports.
FINAL = ("val_accuracy", "test_accuracy", "fewshot_1", "fewshot_5", "fewshot_10", "fewshot_25", "linear_probe")


def parse(value: str | list | tuple | None) -> tuple[str, ...]:
    """Tracker names from --log-with's value ("tensorboard", "wandb,mlflow", "all"), each checked
    to be one vitlab knows and installed, before anything trains."""
    if not value:
        return ()
    names = value if isinstance(value, (list, tuple)) else [v.strip() for v in value.split(",")]
    names = TRACKERS if list(names) == ["all"] else tuple(names)
    for name in names:
        if name not in TRACKERS:
            raise ConfigError("log_with", f"{name!r} is not one of {', '.join(TRACKERS)}, all")
        if importlib.util.find_spec(name) is None:
            raise ConfigError("log_with", f"{name} is not installed; pip install 'vitlab[{name}]'")
    return names


def trackers(names, run_id: str, project: str | None, log_dir: str | Path) -> list:
    """Accelerate trackers for one run (Accelerator(log_with=...); init_trackers starts them).
    Accelerate names every tracker's run after its project, so each is built here: TensorBoard
    logs to log_dir/tensorboard/<project>/<run_id>; W&B takes the run id as its run's name and id
    (resume="allow" reopens it; WANDB_MODE=offline keeps it on disk); MLflow logs to
    MLFLOW_TRACKING_URI, else the SQLite store log_dir/mlflow.db (MLflow 3 retired its file store),
    and reopens the run tagged with the run id."""
    from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

    project, log_dir = project or DEFAULT_PROJECT, Path(log_dir).resolve()
    out = []
    for name in parse(names):
        if name == "tensorboard":
            out.append(TensorBoardTracker(f"{project}/{run_id}", log_dir / "tensorboard"))
        elif name == "wandb":
            (log_dir / "wandb").mkdir(parents=True, exist_ok=True)
            out.append(WandBTracker(project, name=run_id, id=run_id, resume="allow", dir=str(log_dir / "wandb")))
        else:
            import mlflow

            log_dir.mkdir(parents=True, exist_ok=True)
            mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{log_dir / 'mlflow.db'}")
            out.append(MLflowTracker(project, run_id=_mlflow_run(project, run_id), run_name=run_id,
                                     tags={"vitlab.run_id": run_id}))
    return out


def _mlflow_run(experiment: str, run_id: str) -> str | None:
    """The MLflow run an earlier start of this vitlab run opened, to continue it; None: none yet."""
    import mlflow

    if mlflow.get_experiment_by_name(experiment) is None:
        return None
    found = mlflow.search_runs(experiment_names=[experiment], filter_string=f"tags.`vitlab.run_id` = '{run_id}'",
                               output_format="list")
    return found[0].info.run_id if found else None


def final_metrics(result) -> dict[str, float]:
    """A finished run's accuracies, as its record has them (TrainResult)."""
    values = {"val_accuracy": result.val_accuracy, "test_accuracy": result.test_accuracy, **result.transfer}
    return {k: float(values[k]) for k in FINAL if values.get(k) is not None}
