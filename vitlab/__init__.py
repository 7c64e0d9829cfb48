"""vitlab: Vision Transformer scaling studies in a Jupyter workbook."""
import os
from pathlib import Path

__version__ = "0.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent
# The workbook's notebooks/, params/ and reports/README.md as a wheel ships them (setup.py copies
# them in), for `vitlab init` and for commands run outside any workbook; a clone has its own.
BUNDLED = PACKAGE_DIR / "workbook"


def is_workbook(folder: Path) -> bool:
    return (folder / "notebooks" / "train.ipynb").is_file()


def find_workbook(start: Path | None = None) -> Path | None:
    """The workbook that commands and notebooks use: VITLAB_HOME where set; else the nearest
    folder from start (default: the working directory) up that holds notebooks/train.ipynb (one
    `vitlab init` made, or a clone); else the clone this package sits in; None where there is none."""
    if os.environ.get("VITLAB_HOME"):
        return Path(os.environ["VITLAB_HOME"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if is_workbook(folder):
            return folder
    return PACKAGE_DIR.parent if is_workbook(PACKAGE_DIR.parent) else None


# Where params paths, data and results are taken from: the workbook, or without one the working
# directory, whose notebooks then come from the package's copy.
PROJECT_ROOT = find_workbook() or Path.cwd().resolve()
NOTEBOOKS = PROJECT_ROOT / "notebooks" if is_workbook(PROJECT_ROOT) else BUNDLED / "notebooks"
