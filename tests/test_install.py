"""vitlab from a built wheel, outside any clone: `vitlab init` makes a workbook that the commands run in."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from vitlab import PROJECT_ROOT
from vitlab.study import workbook

ONE_RUN = {"name": "one", "base": {"depth": 1, "width": 16, "mlp_dim": 32, "steps": 3, "batch_size": 16}}


@pytest.mark.slow
def test_a_wheel_installed_outside_the_clone_makes_a_workbook_that_sweeps(tmp_path):
    """The wheel is built here and installed into a folder of its own; every command then runs
    from outside the checkout, where nothing of the clone can be found."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(PROJECT_ROOT)], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("vitlab-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "VITLAB_HOME"} | {"PYTHONPATH": str(site)}

    def vitlab(*args, cwd):
        return subprocess.run([sys.executable, "-m", "vitlab.cli", *args], cwd=cwd, env=env, capture_output=True,
                              text=True)

    where = subprocess.run([sys.executable, "-c", "import vitlab; print(vitlab.__file__, vitlab.NOTEBOOKS)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert where[0].startswith(str(site)) and where[1] == str(site / "vitlab" / "workbook" / "notebooks")
    made = vitlab("init", "wb", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[-1] == "next: cd wb && vitlab run params/quickstart.yaml"
    book = tmp_path / "wb"
    assert workbook.files(book) == workbook.files(PROJECT_ROOT)  # the clone's notebooks, params, README
    (book / "params" / "one.yaml").write_text(yaml.safe_dump(ONE_RUN))
    planned = vitlab("sweep", "one.yaml", "--dry-run", cwd=book / "params")  # from a folder inside it
    assert planned.returncode == 0 and f"1 runs, 0 recorded in {book / 'reports' / 'results'}" in planned.stdout
    swept = vitlab("sweep", "params/one.yaml", cwd=book)
    assert swept.returncode == 0, swept.stderr
    [record] = (book / "reports" / "results" / "runs").glob("*.json")
    assert json.loads(record.read_text())["status"] == "ok"
    assert (book / "reports" / "results" / "notebooks" / f"{record.stem}.ipynb").is_file()


def test_environment_yml_installs_this_project_with_the_python_pyproject_allows():
    tomllib = pytest.importorskip("tomllib")  # the standard library's from Python 3.11
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, project["requires-python"][2:].split(".")))
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ['-e ".[dev]"'] and "dev" in project["optional-dependencies"]
