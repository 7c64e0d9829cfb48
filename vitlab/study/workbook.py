"""A new workbook (`vitlab init DIR`): the notebooks, params files and reports folder that
vitlab's commands and notebooks run in, copied from this clone or from the package's bundled copy."""
from __future__ import annotations

import shutil
from pathlib import Path

from vitlab import BUNDLED, PACKAGE_DIR, is_workbook

# What a workbook holds, relative to its root: the notebooks, every params file, the reports README.
PARTS = ("notebooks/*.ipynb", "params/**/*.yaml", "reports/README.md")


def template() -> Path:
    """Where a new workbook is copied from: the clone this package sits in, else the bundled copy."""
    return PACKAGE_DIR.parent if is_workbook(PACKAGE_DIR.parent) else BUNDLED


def files(root: Path) -> list[Path]:
    """A workbook's files, relative to root."""
    return sorted(p.relative_to(root) for part in PARTS for p in root.glob(part) if p.is_file())


def init(directory: str | Path) -> tuple[list[Path], list[Path]]:
    """Copy the workbook into directory (made if missing): (files written, files left as they were).
    A file already there is never overwritten, so rerunning init on a workbook loses nothing."""
    source, target = template(), Path(directory)
    wanted = files(source)
    if not wanted:
        raise FileNotFoundError(f"{source}: no notebooks or params files to copy; reinstall vitlab")
    written, kept = [], []
    for rel in wanted:
        dest = target / rel
        if dest.exists():
            kept.append(rel)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, dest)
        written.append(rel)
    return written, kept
