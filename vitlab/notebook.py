"""Executing a notebook with papermill, quietly, as sweeps and reports both do."""
from __future__ import annotations

from pathlib import Path

import papermill as pm


def execute(notebook: Path, output: Path, parameters: dict, progress: bool = False) -> None:
    """Run notebook with parameters injected, its kernel working in the notebook's folder."""
    pm.execute_notebook(
        str(notebook), str(output), parameters=parameters, progress_bar=progress,
        cwd=str(Path(notebook).parent),
        # ipykernel warns at every start that its loopback TCP is unencrypted.
        extra_arguments=["--IPKernelApp.log_level=ERROR"])
