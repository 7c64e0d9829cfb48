"""The `vitlab` command answers at once where it trains nothing: no torch, timm or pandas loads."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import cli

# Each of these, imported, makes the command wait seconds on a busy machine (torch alone: 10 s).
HEAVY = ("torch", "timm", "pandas", "sklearn", "accelerate")


def run_without_heavy_imports(*argv: str) -> subprocess.CompletedProcess:
    """`vitlab ARGV` in a fresh process where importing any of HEAVY raises ImportError."""
    code = ("import sys\n"
            f"for name in {HEAVY!r}:\n"
            "    sys.modules[name] = None  # import raises ImportError\n"
            "from vitlab.cli import main\n"
            f"sys.exit(main({list(argv)!r}))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)


def test_help_loads_no_heavy_library():
    done = run_without_heavy_imports("--help")
    assert done.returncode == 0, done.stderr
    assert "Vision Transformer scaling studies" in done.stdout


@pytest.mark.parametrize(("params", "field"), [
    ("base: {depht: 2}", "depht"),
    ("base: {model: resnet, depth: 4}", "depth"),
    ("base: {dataset: nosuch}", "dataset"),
])
def test_a_bad_params_file_is_refused_before_any_heavy_library_loads(tmp_path, params, field):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"name: bad\n{params}\n")
    for command in ("sweep", "run"):
        done = run_without_heavy_imports(command, str(bad), "--dry-run")
        assert done.returncode == 2 and "ImportError" not in done.stderr, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and str(bad) in lines[0] and field in lines[0], lines


TINY = ["dataset=digits", "depth=1", "width=16", "heads=2", "mlp_dim=32", "patch_size=4", "train_size=200", "steps=10"]


def test_train_ends_with_a_summary_and_the_records_path(tmp_path, capsys):
    """It printed one raw JSON object; --json keeps that for scripts. In this process: what it
    prints is the test."""
    args = ["train", "--quiet", "--results", tmp_path, *(a for f in TINY for a in ("--set", f))]
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    summary, where = out.strip().splitlines()[-2:]
    assert re.fullmatch(r"[0-9a-f]{12} ok  val=0\.\d{3}  test=0\.\d{3}  loss=\d\.\d{3}  10 steps, [\d.]+ s, \d+ images/s",
                        summary), summary
    path = Path(where.removeprefix("recorded: "))
    assert path.is_file() and path.stem == summary.split()[0]
    code, out, err = cli(capsys, *args, "--json")
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["status"] == "ok", err


def test_models_lists_every_preset_without_loading_torch():
    from vitlab.run.presets import PRESETS

    done = run_without_heavy_imports("models")
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.split() == ["name", "model", "layers", "hidden", "mlp", "heads", "patch", "image_size", "params_m",
                              "gflops"]
    assert [line.split()[0] for line in lines] == list(PRESETS)
    vit_b16 = next(line.split() for line in lines if line.split()[0] == "vit-b/16")
    assert 85 < float(vit_b16[8]) < 88  # ViT-B/16: 86M parameters (paper Table 1)
