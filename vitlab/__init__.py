"""vitlab: Vision Transformer scaling studies in a Jupyter workbook."""
from pathlib import Path

__version__ = "0.1.0"

# Notebooks, params and reports live beside the package in the project checkout.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
