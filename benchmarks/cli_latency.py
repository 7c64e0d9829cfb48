"""How long the `vitlab` command takes to answer where it trains nothing, against importing torch.

Each figure is the median of --repeats fresh processes, timed from start to exit, in one run:
`vitlab --help`; `vitlab sweep --dry-run` of a params file with a misspelt field (refused in one
line); `vitlab models`; and `python -c "import torch"`, the floor a command that loads torch
cannot beat. Targets (issue 23): --help under 1 s and the refusal under 1.5 s on an idle machine,
both below the bare torch import.

    python benchmarks/cli_latency.py --json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BAD_PARAMS = "name: typo\nbase: {depht: 2}\n"


def seconds(command: list[str], repeats: int, expect: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode != expect:
            raise SystemExit(f"{' '.join(command)}: exit {done.returncode}, expected {expect}: {done.stderr[-300:]}")
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    vitlab = [sys.executable, "-m", "vitlab.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "typo.yaml"
        bad.write_text(BAD_PARAMS)
        figures = {
            "cores": os.cpu_count(), "repeats": args.repeats,
            "import_torch_s": seconds([sys.executable, "-c", "import torch"], args.repeats, 0),
            "help_s": seconds([*vitlab, "--help"], args.repeats, 0),
            "bad_params_refusal_s": seconds([*vitlab, "sweep", str(bad), "--dry-run"], args.repeats, 2),
            "models_s": seconds([*vitlab, "models"], args.repeats, 0),
        }
    figures["help_vs_torch"] = round(figures["help_s"] / figures["import_torch_s"], 2)
    figures["refusal_vs_torch"] = round(figures["bad_params_refusal_s"] / figures["import_torch_s"], 2)
    print(json.dumps(figures) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
