"""Bundles the workbook (notebooks/, params/, reports/README.md) into the wheel as vitlab/workbook/,
so that `pip install` and `vitlab init` work outside a clone. By hand: setuptools' package data
reaches only files inside a package's folder, and these stay at the top of the project."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PARTS = ("notebooks/*.ipynb", "params/**/*.yaml", "reports/README.md")  # as vitlab.study.workbook.PARTS


class BuildWithWorkbook(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the clone's own
            return
        target = Path(self.build_lib) / "vitlab" / "workbook"
        for part in PARTS:
            for path in ROOT.glob(part):
                dest = target / path.relative_to(ROOT)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)


setup(cmdclass={"build_py": BuildWithWorkbook})
