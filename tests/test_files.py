"""Files written whole or not at all, readable by colleagues sharing a results directory."""
import os
import stat

import pytest
import torch

from vitlab.run import files
from vitlab.run.config import RunConfig
from vitlab.study import results


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_records_weights_and_kept_files_follow_the_umask(tmp_path, umask_022):
    """Under umask 022 every file the store writes is 0644 (records were 0600: colleagues in a
    shared results directory could not read them)."""
    cfg = RunConfig.from_dict({"depth": 1})
    params = tmp_path / "p.yaml"
    params.write_text("name: p\n")
    written = [results.write(tmp_path, results.make_record(cfg, status="failed", error="x")),
               results.save_weights(tmp_path, cfg.run_id, torch.nn.Linear(2, 2))]
    results.add_tune_axes(tmp_path, ["lr"])
    results.keep_params(tmp_path, params)
    written += [tmp_path / results.TUNE_FILE, tmp_path / results.PARAMS_DIR / "p.yaml"]
    assert {p.name: oct(mode(p)) for p in written} == {p.name: oct(0o644) for p in written}


def test_a_write_that_fails_leaves_the_previous_file_whole_and_no_temp_file(tmp_path):
    path = files.write_text(tmp_path / "a.json", "old")

    def half_then_fail(tmp):
        tmp.write_text("ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.write_whole(path, half_then_fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
