"""The `vitlab` command answers at once where it trains nothing: no torch, timm or pandas loads."""
import subprocess
import sys

import pytest

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
