"""Real papermill executions of both notebooks, the CLI end to end, and the report in Chromium."""
import ast
import io
import json
import re
import shutil
import subprocess
import sys
from dataclasses import fields

import nbformat
import pandas as pd
import pytest

from vitlab import PROJECT_ROOT
from vitlab.run.config import RunConfig
from vitlab.study import results

from .test_results import REQUIRED

pytestmark = pytest.mark.slow
TRAIN_NB = PROJECT_ROOT / "notebooks" / "train.ipynb"
SWEEP = """
name: tiny
base: {depth: 1, width: 16, heads: 2, mlp_dim: 32, patch_size: 7, train_size: 200, steps: 3, batch_size: 32}
sweeps:
  - grid: {depth: [1, 2]}
  - zip: {width: [16, 32], heads: [2, 4]}
  - grid: {patch_size: [7, 14]}
  - runs: [{model: vit}, {model: resnet, depth: 8, width: 8}]
    grid: {train_size: [200, 400]}
  - tune: {lr: [0.001, 0.003]}
"""


def vitlab(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "vitlab.cli", *map(str, args)], capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_train_notebook_parameters_are_the_config_defaults():
    nb = nbformat.read(TRAIN_NB, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {t.id: ast.literal_eval(n.value) for n in ast.parse(cell.source).body
              if isinstance(n, ast.Assign) for t in n.targets}
    assert {f.name: values[f.name] for f in fields(RunConfig)} == RunConfig().to_dict()


def test_stock_papermill_runs_the_train_notebook(tmp_path):
    out = tmp_path / "out.ipynb"
    subprocess.run(["papermill", str(TRAIN_NB), str(out), "-p", "depth", "1", "-p", "width", "16",
                    "-p", "heads", "2", "-p", "mlp_dim", "32", "-p", "steps", "3", "-p", "train_size", "200",
                    "-p", "results_dir", str(tmp_path / "res")], check=True, capture_output=True, cwd=PROJECT_ROOT)
    [record_file] = (tmp_path / "res" / "runs").glob("*.json")
    record = json.loads(record_file.read_text())
    assert record["status"] == "ok" and record["depth"] == 1 and record["train_steps"] == 3
    assert any(o.get("output_type") == "display_data" for c in nbformat.read(out, 4).cells for o in c.get("outputs", []))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    params = root / "tiny.yaml"
    params.write_text(SWEEP)
    proc = vitlab("run", params, "--results", root / "results")
    return root / "results", params, proc


def test_run_executes_each_run_and_renders_the_report(swept):
    out, _, proc = swept
    df = results.load_table(out)
    assert len(df) == 9 and set(df["status"]) == {"ok"} and set(df["model"]) == {"vit", "resnet"}
    assert sorted(p.stem for p in (out / "notebooks").glob("*.ipynb")) == sorted(df["run_id"])
    html = (out / "report.html").read_text()
    assert html.count("<img") >= 5 and "data:image/png;base64" in html
    assert "def " not in html and "import " not in html  # no code cells by default
    assert "9 ok" in proc.stderr
    # lr tuned on validation at each point: the base point's three learning rates give one run.
    assert results.tune_axes(out) == ("lr",) and "lr (chosen)" in html
    assert "best on the validation split" in html
    assert sorted(p.stem for p in (out / "weights").glob("*.pt")) == sorted(df["run_id"])
    # The look inside the best ViT, with the paper's neighbour-vs-distant figure beside its grid.
    assert "Inside the best ViT" in html and re.search(
        r"neighbouring patches' position embeddings: <strong>-?[\d.]+</strong>; of distant patches "
        r"\(at least half the grid apart\): <strong>-?[\d.]+</strong>", html)
    assert "run params/pos_embed.yaml to fill this section" in html


def test_inspect_notebook_draws_a_run(swept):
    out, _, _ = swept
    df = results.load_table(out)
    run_id = df[df["model"] == "vit"]["run_id"].iloc[0]
    executed = out.parent / "inspect.ipynb"
    subprocess.run(["papermill", str(PROJECT_ROOT / "notebooks" / "inspect.ipynb"), str(executed),
                    "-p", "results_dir", str(out), "-p", "run_id", run_id], check=True, capture_output=True)
    nb = nbformat.read(executed, 4)
    images = [o for c in nb.cells for o in c.get("outputs", []) if "data:image/png" in o.get("data", {}).get("text/html", "")]
    assert len(images) == 4  # filters, position similarity, attention distance, rollout
    texts = [o["data"].get("text/markdown", "") for c in nb.cells for o in c.get("outputs", []) if "data" in o]
    assert any(t.startswith(f"Run `{run_id}`") for t in texts)
    assert any(t.startswith("Mean cosine similarity of neighbouring patches") for t in texts)


def test_results_command_prints_one_row_per_run(swept):
    out, _, _ = swept
    csv = pd.read_csv(io.StringIO(vitlab("results", out, "--format", "csv").stdout))
    assert len(csv) == 9 and all(c in csv.columns for c in REQUIRED) and "test_correct" not in csv
    assert results.load_table(out)["test_correct"].notna().all()  # kept in the records, for the statistics
    assert csv["test_accuracy"].between(0, 1).all() and (csv["train_flops"] > csv["flops_per_image"]).all()
    as_json = json.loads(vitlab("results", out, "--format", "json").stdout)
    assert sorted(r["run_id"] for r in as_json) == sorted(csv["run_id"])


def test_rerun_trains_nothing_already_recorded(swept):
    out, params, _ = swept
    before = {p.name: p.read_text() for p in (out / "runs").iterdir()}
    proc = vitlab("sweep", params, "--results", out)
    assert "9 skipped" in proc.stderr
    assert {p.name: p.read_text() for p in (out / "runs").iterdir()} == before


def test_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    nb = nbformat.read(TRAIN_NB, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])) + 1
    nb.cells.insert(at, nbformat.v4.new_code_cell("if depth == 2:\n    raise RuntimeError('boom at depth 2')"))
    nbformat.write(nb, tmp_path / "flaky.ipynb")
    params = tmp_path / "p.yaml"
    params.write_text(f"notebook: {tmp_path / 'flaky.ipynb'}\n" + SWEEP.split("sweeps:")[0]
                      + "grid: {depth: [1, 2]}\n")
    out = tmp_path / "results"
    proc = vitlab("run", params, "--results", out, check=False)
    assert proc.returncode == 1
    df = results.load_table(out).set_index("depth")
    assert df.loc[1, "status"] == "ok" and df.loc[2, "status"] == "failed"
    assert df.loc[2, "error"] == "RuntimeError: boom at depth 2"
    assert "1 failed" in (out / "report.html").read_text() and (out / "report.html").exists()


# A laptop's window, narrower than the all-runs table (1,218 px with its headers in words).
WIDTH = 1000


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_report_opens_in_chromium_with_every_figure_and_no_network(swept):
    from playwright.sync_api import sync_playwright

    out, _, _ = swept
    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto((out / "report.html").as_uri(), wait_until="load")
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth, e.alt])")
        captions = page.eval_on_selector_all("figcaption", "els => els.map(e => e.textContent)")
        claims = page.eval_on_selector_all("table", "els => els.map(e => e.textContent)")
        title, text = page.title(), page.inner_text("body")
        page.set_viewport_size({"width": WIDTH, "height": 900})
        contents = page.eval_on_selector_all("nav.vitlab-contents a", """els => els.map(
            a => [a.textContent, document.getElementById(decodeURIComponent(a.hash.slice(1))) !== null])""")
        page_width = page.evaluate("document.documentElement.scrollWidth")
        # The widest table (every run's fields): wider than the page, so its own box scrolls.
        box = page.evaluate("""() => { const t = [...document.querySelectorAll('table')].sort(
            (a, b) => b.scrollWidth - a.scrollWidth)[0]; const o = t.closest('.jp-OutputArea-output');
            return [t.scrollWidth, o.clientWidth, o.scrollWidth, getComputedStyle(o).overflowX]; }""")
        browser.close()
    assert title == "vitlab report"
    assert len(images) >= 5 and all(done and width > 100 for done, width, _ in images)
    assert all(len(alt) > 30 and "No description" not in alt for _, _, alt in images)  # real alt text
    assert len(captions) == len(images) and all("paper" in c for c in captions)
    assert any("ResNets beat ViTs on the smallest training sets" in t and "not enough runs" in t for t in claims)
    assert "Decided together with Holm's correction over the report's" in text
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    sections = [text for text, _ in contents]
    assert len(sections) >= 10 and all(found for _, found in contents)  # every link lands on its section
    assert sections[0] == "What this report covers" and "All runs" in sections
    covers = next(t for t in claims if "params files" in t)
    assert "tiny.yaml" in covers and "vitlab 0." in covers and "timm" in covers and "cpu" in covers and "ok" in covers
    table_width, box_width, box_scroll, overflow = box
    assert table_width > WIDTH and overflow == "auto" and box_scroll > box_width and page_width <= WIDTH
