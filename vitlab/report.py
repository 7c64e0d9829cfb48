"""Render the report notebook on a results directory to one self-contained HTML file."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from vitlab import PROJECT_ROOT, notebook

REPORT_NOTEBOOK = PROJECT_ROOT / "notebooks" / "report.ipynb"
EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\bsrc=\"(?:https?:)?//[^\"]*\"[^>]*>\s*</script>", re.IGNORECASE)


def render(results_dir: str | Path, show_code: bool = False, progress: bool = False) -> Path:
    """Execute the report notebook on results_dir; write report.ipynb and report.html there."""
    results_dir = Path(results_dir).resolve()
    if not (results_dir / "runs").is_dir():
        raise FileNotFoundError(f"{results_dir}: no runs/ folder here; run a sweep into it first")
    executed = results_dir / "report.ipynb"
    notebook.execute(REPORT_NOTEBOOK, executed, {"results_dir": str(results_dir)}, progress)
    nb = nbformat.read(executed, as_version=4)
    # Papermill's injected-parameters cell is bookkeeping, not part of the report.
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    exporter = HTMLExporter(exclude_input=not show_code, exclude_input_prompt=True,
                            exclude_output_prompt=True, embed_images=True)
    html, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": "vitlab report"}})
    # The template loads require.js from a CDN for widgets, which the report has none of;
    # dropping external scripts keeps the page readable offline with no network request.
    html = EXTERNAL_SCRIPT.sub("", html)
    out = results_dir / "report.html"
    out.write_text(html, encoding="utf-8")
    return out
