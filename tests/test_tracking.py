"""Trackers for real and offline: TensorBoard's event files, MLflow's SQLite store through its
client, and W&B's offline run file, each read back."""
import json
import struct
import subprocess
import sys
import time

import pytest
import yaml

from tests.helpers import recorded
from vitlab import PROJECT_ROOT
from vitlab.run import tracking, train
from vitlab.run.config import RunConfig
from vitlab.run.models import build_model
from vitlab.run.train import fit

pytest.importorskip("wandb")
pytest.importorskip("mlflow")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def wandb_records(log_dir, run_id: str) -> list:
    """Every record of the W&B offline runs of run_id (a resumed run writes a second file). Read
    here: wandb 0.31 reads these files in its Go core only. The file is LevelDB's log format, a
    7-byte header then 32 KiB blocks of chunks (crc32, length, type), holding Record protobufs."""
    from wandb.proto import wandb_internal_pb2

    out = []
    for path in sorted((log_dir / "wandb" / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")):
        data, pos, chunk = path.read_bytes(), 7, b""
        assert data[:4] == b":W&B"
        while pos + 7 <= len(data):
            if 32768 - pos % 32768 < 7:  # a block's tail too short for a chunk header is padding
                pos += 32768 - pos % 32768
                continue
            _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
            if kind == 0:
                break
            chunk, pos = chunk + data[pos + 7:pos + 7 + length], pos + 7 + length
            if kind in (1, 4):  # a whole record, or the last chunk of one
                out.append(wandb_internal_pb2.Record.FromString(chunk))
                chunk = b""
    return out


def _items(items) -> dict:
    """A record's items as {key: value} (the key is in nested_key where the SDK nests it)."""
    return {i.key or ".".join(i.nested_key): json.loads(i.value_json) for i in items}


def wandb_history(records) -> list[dict]:
    return [_items(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]


def mlflow_run(log_dir, project: str, run_id: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{log_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(project)
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`vitlab.run_id` = '{run_id}'")
    return client, runs


def test_every_tracker_holds_the_config_each_epoch_and_the_final_accuracies(tiny_cfg, tmp_path):
    cfg = RunConfig.from_dict({**tiny_cfg.to_dict(), "steps": 12, "train_size": 128})
    result = fit(cfg, build_model(cfg), progress=False, log_with="all", log_dir=tmp_path, project="study")
    epochs = [h["train_loss"] for h in result.history]
    assert len(epochs) >= 2

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(tmp_path / "tensorboard" / "study" / cfg.run_id)).Reload()
    assert [e.value for e in board.Scalars("train_loss")] == pytest.approx(epochs)
    assert board.Scalars("test_accuracy")[-1].value == pytest.approx(result.test_accuracy)

    client, [run] = mlflow_run(tmp_path, "study", cfg.run_id)
    assert run.info.run_name == cfg.run_id and run.data.params["depth"] == "1" and run.data.params["steps"] == "12"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "train_loss")] == pytest.approx(epochs)
    assert run.data.metrics["test_accuracy"] == pytest.approx(result.test_accuracy)
    assert run.data.metrics["linear_probe"] == pytest.approx(result.transfer["linear_probe"])

    records = wandb_records(tmp_path, cfg.run_id)
    [start] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (start.project, start.run_id, start.display_name) == ("study", cfg.run_id, cfg.run_id)
    config = {k: v for r in records if r.WhichOneof("record_type") == "config" for k, v in _items(r.config.update).items()}
    assert config["width"] == 16 and config["seed"] == 0
    history = wandb_history(records)
    assert [h["train_loss"] for h in history] == pytest.approx(epochs)
    assert history[-1]["val_accuracy"] == pytest.approx(result.val_accuracy)
    assert history[-1]["fewshot_10"] == pytest.approx(result.transfer["fewshot_10"])


def test_a_run_resumed_from_its_checkpoint_continues_its_tracker_runs(tiny_cfg, tmp_path, monkeypatch):
    cfg = RunConfig.from_dict({**tiny_cfg.to_dict(), "steps": 12, "train_size": 128})
    calls, real_step = {"n": 0}, train.step

    def dies_at_step_8(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt  # after the checkpoint at step 5 and the first epoch's log
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "step", dies_at_step_8)
    logs = dict(log_with="wandb,mlflow", log_dir=tmp_path / "logs", project="study")
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, build_model(cfg), progress=False, checkpoint_dir=tmp_path, checkpoint_every=5, **logs)
    monkeypatch.setattr(train, "step", real_step)
    time.sleep(1.1)  # W&B names an offline run's folder to the second; a real resume comes later than that
    resumed = fit(cfg, build_model(cfg), progress=False, checkpoint_dir=tmp_path, checkpoint_every=5, **logs)

    client, runs = mlflow_run(tmp_path / "logs", "study", cfg.run_id)
    assert len(runs) == 1  # one MLflow run for both starts
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "train_loss")]
    assert steps == [h["images_seen"] // cfg.batch_size for h in resumed.history]  # before and after the stop
    records = wandb_records(tmp_path / "logs", cfg.run_id)
    starts = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert len(starts) == 2 and {s.run_id for s in starts} == {cfg.run_id}  # one W&B run, opened twice
    assert [h["_step"] for h in wandb_history(records)] == steps


def test_a_tracker_unknown_or_not_installed_is_refused_in_one_line_before_anything_runs(monkeypatch):
    with pytest.raises(tracking.ConfigError, match=r"^log_with: 'comet' is not one of tensorboard, wandb, mlflow, all$"):
        tracking.parse("tensorboard,comet")
    with monkeypatch.context() as m:
        m.setattr(tracking.importlib.util, "find_spec", lambda name: None)
        with pytest.raises(tracking.ConfigError, match=r"wandb is not installed; pip install 'vitlab\[wandb\]'"):
            tracking.parse("wandb")
    assert tracking.parse("all") == tracking.TRACKERS and tracking.parse(None) == ()
    refused = subprocess.run([sys.executable, "-m", "vitlab.cli", "sweep", str(PROJECT_ROOT / "params" / "quickstart.yaml"),
                              "--dry-run", "--log-with", "comet"], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "'comet' is not one of" in refused.stderr


@pytest.mark.slow
def test_a_sweep_logs_each_run_in_its_params_files_project(tmp_path):
    params = tmp_path / "two.yaml"
    params.write_text(yaml.safe_dump({"name": "two_seeds", "base": {"depth": 1, "width": 16, "mlp_dim": 32,
                                                                    "steps": 3, "batch_size": 16},
                                      "grid": {"seed": [0, 1]}}))
    out = tmp_path / "results"
    swept = subprocess.run([sys.executable, "-m", "vitlab.cli", "sweep", str(params), "--results", str(out),
                            "--log-with", "tensorboard,mlflow"], capture_output=True, text=True)
    assert swept.returncode == 0, swept.stderr
    run_ids = set(recorded(out))
    assert {p.name for p in (out / "logs" / "tensorboard" / "two_seeds").iterdir()} == run_ids
    client, runs = mlflow_run(out / "logs", "two_seeds", next(iter(run_ids)))
    experiment = client.get_experiment_by_name("two_seeds")
    assert {r.info.run_name for r in client.search_runs([experiment.experiment_id])} == run_ids
