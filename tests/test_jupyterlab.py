"""The notebooks as a person uses them: JupyterLab on loopback, opened in Debian's Chromium,
Run > Run All Cells from the menu, then what the page shows and what the notebook saved."""
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest

from tests.helpers import free_port
from vitlab import PROJECT_ROOT

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (.ci/run installs it)")]
# A small run, as a person would set it in the parameters cell before running all.
TRAIN = {"depth": 1, "width": 16, "heads": 2, "mlp_dim": 32, "train_size": 400, "steps": 60, "batch_size": 32}


def _set_parameters(path, values: dict) -> None:
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for key, value in values.items():
        cell.source, n = re.subn(rf"^{key} = .*$", f"{key} = {value!r}", cell.source, flags=re.M)
        assert n == 1, key
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a folder of notebook copies, on a loopback port with a token."""
    root = tmp_path_factory.mktemp("lab")
    results = root / "results"
    for name in ("train", "inspect", "report"):
        shutil.copy(PROJECT_ROOT / "notebooks" / f"{name}.ipynb", root / f"{name}.ipynb")
    _set_parameters(root / "train.ipynb", {**TRAIN, "results_dir": str(results)})
    for name in ("inspect", "report"):
        _set_parameters(root / f"{name}.ipynb", {"results_dir": str(results)})
    settings = root / ".settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Every cell in the page, so that each one's prompt and outputs can be read.
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port = free_port()
    token = secrets.token_hex(16)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         f"--LabApp.user_settings_dir={root / '.settings'}", f"--LabApp.workspaces_dir={root / '.workspaces'}",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            assert server.poll() is None and time.time() < deadline, f"JupyterLab did not start: {server.stderr.read()}"
            time.sleep(0.5)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        yield {"root": root, "results": results, "url": url, "token": token, "browser": browser}
        browser.close()
    server.terminate()
    server.wait(timeout=30)


def run_all(lab, name: str, timeout: float = 400):
    """Open a notebook, run all its cells from the Run menu, wait for them, save it; return the page
    (open) and the saved notebook. A screenshot is kept beside the notebook when anything fails."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = lab["browser"].new_page(viewport={"width": 1400, "height": 1000})
    shot = lab["root"] / f"{name}-failure.png"
    try:
        # A workspace of its own, reset: only this notebook open, so the menu acts on it.
        page.goto(f"{lab['url']}/lab/workspaces/{name}/tree/{name}.ipynb?token={lab['token']}&reset")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        # The notebook's kernel started and idle, as the status bar shows it, before anything runs.
        page.wait_for_function("() => /\\| Idle/.test(document.querySelector('#jp-main-statusbar')?.textContent || '')",
                               timeout=120_000, polling=250)
        for _ in range(3):  # a click the page takes before its menus are wired does nothing: click again
            page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
            try:
                page.wait_for_function("""() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                    .some(e => /\\[(\\*|\\d+)\\]/.test(e.textContent))""", timeout=20_000, polling=250)
                break
            except PlaywrightTimeout:
                continue
        # Done when every code cell shows an execution count and none is queued or running.
        page.wait_for_function("""() => { const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
            .map(e => e.textContent.trim()); return p.length > 0 && p.every(t => /^\\[\\d+\\]:$/.test(t)); }""",
                               timeout=timeout * 1000, polling=500)
        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^File$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Save Notebook$")).click()
        time.sleep(1)
        return page, nbformat.read(lab["root"] / f"{name}.ipynb", as_version=4), shot
    except Exception:
        page.screenshot(path=str(shot), full_page=True)
        raise


def outputs(nb, kind: str):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == kind]


def check(page, shot, condition: bool, message: str) -> None:
    if not condition:
        page.screenshot(path=str(shot), full_page=True)
        raise AssertionError(f"{message} (screenshot: {shot})")


def test_train_notebook_runs_all_in_jupyterlab(lab):
    page, nb, shot = run_all(lab, "train")
    errors = outputs(nb, "error")
    check(page, shot, errors == [], f"cells raised: {[e.ename + ': ' + e.evalue for e in errors]}")
    bars = page.eval_on_selector_all(".jp-OutputArea-output .widget-hprogress .progress-bar", "els => els.map(e => e.style.width)")
    check(page, shot, bars == ["100%"], f"the progress bar is not a finished widget: {bars}")
    widgets = [o for o in outputs(nb, "display_data") if "application/vnd.jupyter.widget-view+json" in o.data]
    check(page, shot, len(widgets) >= 1, "no widget output saved")
    text = "".join(o.get("text", "") for o in outputs(nb, "stream"))
    check(page, shot, "it/s" not in text and "step/s" not in text, "the progress bar printed as text")
    check(page, shot, page.locator(".jp-OutputArea-output img").count() >= 1, "no figure displayed")
    records = list((lab["results"] / "runs").glob("*.json"))
    check(page, shot, len(records) == 1, "no record written")
    record = json.loads(records[0].read_text())
    check(page, shot, record["status"] == "ok" and record["train_steps"] == TRAIN["steps"], f"record: {record}")
    page.close()


@pytest.mark.parametrize("name", ["inspect", "report"])
def test_inspect_and_report_notebooks_run_all_in_jupyterlab(lab, name):
    if not list((lab["results"] / "runs").glob("*.json")):
        pytest.skip("needs the run the train notebook test records")
    page, nb, shot = run_all(lab, name)
    errors = outputs(nb, "error")
    check(page, shot, errors == [], f"cells raised: {[e.ename + ': ' + e.evalue for e in errors]}")
    figures = page.locator(".jp-OutputArea-output img").count()
    tables = page.locator(".jp-OutputArea-output table").count()
    check(page, shot, figures >= (4 if name == "inspect" else 1) and (name == "inspect" or tables >= 3),
          f"{figures} figures and {tables} tables shown")
    page.close()
