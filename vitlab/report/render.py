"""Render the report notebook on a results directory to one self-contained HTML file."""
from __future__ import annotations

import html as html_text
import re
import warnings
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from vitlab import NOTEBOOKS
from vitlab.study import kernels, results

REPORT_NOTEBOOK = NOTEBOOKS / "report.ipynb"
EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\bsrc=\"(?:https?:)?//[^\"]*\"[^>]*>\s*</script>", re.IGNORECASE)
SECTION = re.compile(r'<h2 id="([^"]+)">(.*?)<a class="anchor-link"', re.DOTALL)
# Wide tables (every run's fields) scroll inside their own box instead of widening the page.
STYLE = """<style>
.jp-OutputArea-output { overflow-x: auto; max-width: 100%; }
nav.vitlab-contents { margin: 1em 0 2em; } nav.vitlab-contents ol { columns: 2; }
</style>"""


def _contents(html: str) -> str:
    """A list of links to the report's sections, put before the first. Written here: nbconvert's
    templates have no table of contents (the toc2 extension is for the classic notebook)."""
    sections = SECTION.findall(html)
    if not sections:
        return html
    items = "".join(f'<li><a href="#{anchor}">{html_text.escape(re.sub("<[^>]+>", "", title).strip())}</a></li>'
                    for anchor, title in sections)
    nav = f'<nav class="vitlab-contents"><h2>Contents</h2><ol>{items}</ol></nav>'
    first = SECTION.search(html).start()
    return html[:first] + nav + html[first:]


def render(results_dir: str | Path, show_code: bool = False, progress: bool = False) -> Path:
    """Execute the report notebook on results_dir; write report.ipynb and report.html there."""
    results_dir = Path(results_dir).resolve()
    if not (results_dir / "runs").is_dir():
        raise FileNotFoundError(f"{results_dir}: no runs/ folder here; run a sweep into it first")
    for path, problem in results.damaged(results_dir):  # named here; the report lists them too
        warnings.warn(f"{path}: {problem}; left out of the report", results.DamagedRecordWarning, stacklevel=2)
    executed = results_dir / "report.ipynb"
    kernels.execute_in_new_kernel(REPORT_NOTEBOOK, executed, {"results_dir": str(results_dir)}, progress)
    nb = nbformat.read(executed, as_version=4)
    # Papermill's injected-parameters cell is bookkeeping, not part of the report.
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    exporter = HTMLExporter(exclude_input=not show_code, exclude_input_prompt=True,
                            exclude_output_prompt=True, embed_images=True)
    html, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": "vitlab report"}})
    # The template loads require.js from a CDN for widgets, which the report has none of;
    # dropping external scripts keeps the page readable offline with no network request.
    html = EXTERNAL_SCRIPT.sub("", html)
    html = _contents(html).replace("</head>", STYLE + "</head>", 1)
    out = results_dir / "report.html"
    out.write_text(html, encoding="utf-8")
    return out
