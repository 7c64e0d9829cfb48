import io
import json

import pandas as pd
import pytest

from vitlab import PROJECT_ROOT
from vitlab.run.config import RunConfig
from vitlab.run.models import build_model
from vitlab.run.train import fit
from vitlab.study import results

REQUIRED = ["run_id", "status", "model", "depth", "width", "heads", "mlp_dim", "patch_size", "dataset",
            "train_size", "epochs", "batch_size", "lr", "seed", "n_params", "flops_per_image",
            "train_flops", "val_accuracy", "test_accuracy", "wall_time_s", "images_per_s"]


def test_record_carries_config_and_metrics(tiny_cfg, tmp_path):
    result = fit(tiny_cfg, build_model(tiny_cfg), progress=False)
    record = results.make_record(tiny_cfg, result)
    assert all(k in record for k in REQUIRED)
    assert record["run_id"] == tiny_cfg.run_id and record["status"] == "ok"
    assert {k: record[k] for k in tiny_cfg.to_dict()} == tiny_cfg.to_dict()
    assert record["train_exaflops"] == record["train_flops"] / 1e18
    # Each test image's answer, in the split's order, so that runs pair image by image.
    answers = results.unpack_bits(record["test_correct"], len(result.test_correct))
    assert answers.tolist() == result.test_correct.tolist() and answers.mean() == record["test_accuracy"]
    path = results.write(tmp_path, record)
    assert path == tmp_path / "runs" / f"{tiny_cfg.run_id}.json"
    assert json.loads(path.read_text()) == record
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_failed_record_and_table(tmp_path):
    ok = RunConfig.from_dict({"depth": 1})
    bad = RunConfig.from_dict({"depth": 2})
    results.write(tmp_path, results.make_record(bad, status="failed", error="RuntimeError: boom"))
    assert results.read_record(tmp_path, bad.run_id)["error"] == "RuntimeError: boom"
    assert results.read_record(tmp_path, ok.run_id) is None
    df = results.load_table(tmp_path)
    assert len(df) == 1 and df.loc[0, "status"] == "failed" and pd.isna(df.loc[0, "test_accuracy"])
    assert list(df.columns[:2]) == ["run_id", "status"]
    csv = pd.read_csv(io.StringIO(results.export(df, "csv")))
    assert csv.loc[0, "run_id"] == bad.run_id
    assert json.loads(results.export(df, "json"))[0]["depth"] == 2
    results.export(df, "parquet", tmp_path / "r.parquet")
    assert pd.read_parquet(tmp_path / "r.parquet").loc[0, "depth"] == 2


def test_best_run_is_chosen_on_validation_never_on_test():
    """Found by reading: the best ViT (report, inspect.ipynb) was the one best on the test split."""
    a, b, c = (RunConfig.from_dict({"depth": d}) for d in (1, 2, 3))
    df = pd.DataFrame([{"run_id": a.run_id, "status": "ok", "model": "vit", "val_accuracy": 0.90, "test_accuracy": 0.80},
                       {"run_id": b.run_id, "status": "ok", "model": "vit", "val_accuracy": 0.85, "test_accuracy": 0.95},
                       {"run_id": c.run_id, "status": "ok", "model": "vit", "val_accuracy": None, "test_accuracy": 0.99}]
                      ).assign(dataset="mnist5k", pretrained=None)
    assert results.best_run(df) == a.run_id
    assert results.best_run(df.iloc[2:]) is None  # a run without a validation accuracy is never chosen


def test_best_run_stays_within_one_dataset_and_among_runs_from_scratch():
    """Found by simulation: a digits ViT (easier validation split) became "the best ViT" of a
    mnist5k study, and a fine-tuned run was a candidate beside runs trained from scratch."""
    ids = [RunConfig.from_dict({"depth": d}).run_id for d in (1, 2, 3, 4)]
    df = pd.DataFrame({"run_id": ids, "status": "ok", "model": "vit", "val_accuracy": [0.90, 0.91, 0.99, 0.995],
                       "test_accuracy": 0.9, "dataset": ["mnist5k", "mnist5k", "digits", "mnist5k"],
                       "pretrained": [None, None, None, ids[0]]})
    assert results.best_run(df) == ids[1]  # mnist5k has the most runs from scratch
    assert results.best_run(df, dataset="digits") == ids[2]


def test_tune_axes_are_kept_beside_the_records(tmp_path):
    assert results.tune_axes(tmp_path) == ()
    results.add_tune_axes(tmp_path, ("lr",))
    results.add_tune_axes(tmp_path, ("weight_decay", "lr"))
    assert results.tune_axes(tmp_path) == ("lr", "weight_decay")


def test_records_written_before_a_field_existed_load_with_its_default(tmp_path):
    import json

    from vitlab.run.config import RunConfig
    from vitlab.study import results

    record = {"run_id": RunConfig().run_id, "status": "ok", **RunConfig().to_dict()}
    del record["compile"]
    results.runs_dir(tmp_path).mkdir(parents=True)
    (results.runs_dir(tmp_path) / f"{record['run_id']}.json").write_text(json.dumps(record))
    assert results.load_table(tmp_path)["compile"].tolist() == [False]


def test_every_command_and_notebook_defaults_to_one_results_directory():
    """Found by reading: sweeps wrote to reports/NAME, `vitlab train` to reports/runs and the train
    notebook to reports/notebooks, so no report saw a notebook's or a single run's results."""
    import nbformat

    from vitlab.cli import _results_dir, build_parser

    parse = build_parser().parse_args
    assert results.DEFAULT_DIR == PROJECT_ROOT / "reports" / "results"
    for argv in (["sweep", "params/quickstart.yaml"], ["run", "params/quickstart.yaml"], ["train"]):
        assert _results_dir(parse(argv)) == results.DEFAULT_DIR
    for argv in (["report"], ["results"]):
        assert parse(argv).results_dir == results.DEFAULT_DIR
    assert results.resolve_dir(None) == results.DEFAULT_DIR
    for name in ("train", "inspect", "report"):
        nb = nbformat.read(PROJECT_ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        namespace = {}
        exec(next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", [])), namespace)
        assert namespace["results_dir"] is None, name



def test_damaged_records_are_named_and_left_out_never_a_traceback_or_a_bogus_row(tmp_path, damage):
    cfgs = [RunConfig.from_dict({"depth": d}) for d in range(1, 7)]
    for c in cfgs:
        results.write(tmp_path, results.make_record(c, status="failed", error="x"))
    kinds = damage(tmp_path, [c.run_id for c in cfgs])
    problems = {p.stem: problem for p, problem in results.damaged(tmp_path)}
    assert set(problems) == set(kinds)
    assert problems[cfgs[1].run_id].startswith("not valid JSON (")
    assert {r: problems[r] for r in kinds if r != cfgs[1].run_id} == {
                        cfgs[2].run_id: "empty file",
                        cfgs[3].run_id: "not a vitlab record (no run_id, status, model)",
                        cfgs[4].run_id: "a JSON list, not a record",
                        cfgs[5].run_id: f"holds run {cfgs[0].run_id}, not {cfgs[5].run_id}"}
    with pytest.warns(results.DamagedRecordWarning) as caught:
        df = results.load_table(tmp_path)
    assert df["run_id"].tolist() == [cfgs[0].run_id]
    assert sorted(str(w.message).split(":")[0] for w in caught) == sorted(
        str(results.record_path(tmp_path, r)) for r in kinds)
    for run_id in kinds:
        with pytest.warns(results.DamagedRecordWarning, match="treated as not recorded"):
            assert results.read_record(tmp_path, run_id) is None


def test_a_damaged_record_set_aside_keeps_every_copy(tmp_path):
    cfg = RunConfig.from_dict({"depth": 1})
    path = results.record_path(tmp_path, cfg.run_id)
    for n, name in enumerate((f"{path.name}.bad", f"{path.name}.bad2")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'{{"torn": {n}')
        with pytest.warns(results.DamagedRecordWarning, match=f"set aside as {name}; the run is trained again"):
            assert results.read_record(tmp_path, cfg.run_id, on_damaged="set aside") is None
        assert not path.exists() and (path.parent / name).read_text() == f'{{"torn": {n}'
    assert results.read_record(tmp_path, cfg.run_id, on_damaged="set aside") is None  # nothing left to set aside
    assert results.damaged(tmp_path) == []


def test_integer_fields_are_written_as_integers(tmp_path):
    """A ResNet's empty heads made the column float: `--format json` wrote "heads": 2.0."""
    for cfg in (RunConfig.from_dict({"depth": 1}), RunConfig.from_dict({"model": "resnet", "depth": 8, "width": 8})):
        results.write(tmp_path, results.make_record(cfg, status="failed", error="x"))
    df = results.load_table(tmp_path)
    rows = {r["model"]: r for r in json.loads(results.export(df, "json"))}
    assert rows["vit"]["heads"] == 4 and isinstance(rows["vit"]["heads"], int) and rows["resnet"]["heads"] is None
    assert ",4,128,7," in results.export(df, "csv")


def test_results_in_a_terminal_is_a_table_of_what_varies_and_csv_in_a_pipe(tmp_path):
    import os
    import pty
    import subprocess
    import sys

    for depth in (2, 1, 3):
        results.write(tmp_path, results.make_record(RunConfig.from_dict({"depth": depth}), status="failed", error="x"))
    command = [sys.executable, "-m", "vitlab.cli", "results", str(tmp_path)]
    leader, follower = pty.openpty()
    proc = subprocess.run(command, stdout=follower, stderr=subprocess.PIPE, check=False, timeout=120)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end is closed: all read
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    lines = out.decode().replace("\r", "").strip().splitlines()
    assert proc.returncode == 0, proc.stderr
    assert lines[0].split() == ["run_id", "depth", "status", "val_accuracy", "test_accuracy", "n_params",
                                "train_flops", "wall_time_s"]
    assert [line.split()[1] for line in lines[1:]] == ["1", "2", "3"]  # sorted by what varies
    piped = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    assert piped.stdout.startswith("run_id,status,model,")
