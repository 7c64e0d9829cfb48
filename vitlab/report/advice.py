"""What to run next, as a params file (`vitlab next`): the shape the star sweep's laws recommend at
a budget, and each claim the runs leave undecided at the seeds per configuration that would give
it 80% power, every block named for why it is there."""
from __future__ import annotations

import datetime
import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from vitlab.report import claims, shape, stats
from vitlab.run import datasets
from vitlab.run.config import RunConfig


def config_of(row: pd.Series, defaults: bool = True) -> dict:
    """A study point's configuration as params-file values (seed left out): the fields its record
    holds, with a tuned axis at the value chosen for it; defaults=False leaves out the fields at
    RunConfig's defaults (the same run either way: a run id hashes the resolved config)."""
    out = {}
    for f in fields(RunConfig):
        value = row.get(f"chosen_{f.name}", row.get(f.name))
        if f.name == "seed" or value is None or (not isinstance(value, str) and pd.isna(value)):
            continue
        kind = f.type.split("|")[0].strip()
        value = {"int": int, "float": float, "bool": bool}.get(kind, str)(value)
        if defaults or f.name == "model" or value != f.default:
            out[f.name] = value
    return out


def _shared(configs: list[dict]) -> tuple[dict, list[dict]]:
    """A block's base (what every run shares) and each run's own fields."""
    base = {k: v for k, v in configs[0].items() if all(c.get(k) == v for c in configs[1:])}
    return base, [{k: v for k, v in c.items() if k not in base} for c in configs]


def shape_block(found: shape.Star, budget: float) -> tuple[dict | None, str]:
    """The recommended shape at `budget` FLOPs as a block (its step budget sized to spend it), and
    the comment that says why; None where no shape can be recommended."""
    import torch

    from vitlab.run.flops import TRAIN_FLOPS_PER_FORWARD, forward_flops
    from vitlab.run.models import build_model

    recommended = found.recommend(budget)
    missing = [n for n in shape.DIMENSIONS if n not in recommended]
    open_ = [n for n, (v, _, _) in recommended.items() if v == 0 or not np.isfinite(v)]
    if missing or open_:
        why = "; ".join([*(f"{n}: no law fitted ({found.laws[n]})" for n in missing),
                         *(f"{n}: the runs show no cost of {'shrinking' if recommended[n][0] == 0 else 'growing'} it"
                           for n in open_)])
        return None, f"No recommended shape: {why}."
    # Any point of the star: they share every field but the shape, the steps and the seed.
    values = config_of(next(iter(found.arms.values())).iloc[0], defaults=False)
    heads = found.centre["heads"]
    values |= {"depth": max(1, round(recommended["depth"][0])),
               "width": max(heads, heads * round(recommended["width"][0] / heads)), "heads": heads,
               "mlp_dim": max(1, round(recommended["MLP size"][0]))}
    cfg = RunConfig.from_dict({k: v for k, v in values.items() if k != "steps"} | {"steps": 1})
    with torch.device("meta"):  # counted, not built: a recommended model may be large
        model = build_model(cfg)
    image = (datasets.spec(cfg.dataset).channels, cfg.input_size, cfg.input_size)
    per_step = TRAIN_FLOPS_PER_FORWARD * forward_flops(model, image) * cfg.batch_size
    values["steps"] = max(1, math.ceil(budget / per_step))
    intervals = ", ".join(f"{n} {v:.3g} ({lo:.3g} to {hi:.3g})" for n, (v, lo, hi) in recommended.items())
    why = (f"The shape the star sweep's laws recommend at {budget:.3g} FLOPs (95% intervals): {intervals}; "
           f"rounded, at {values['steps']} steps of {cfg.batch_size} to spend the budget.")
    return {"name": f"recommended shape at {budget:.3g} FLOPs", **_block([values], [0])}, why


def _block(configs: list[dict], seeds: list[int]) -> dict:
    base, own = _shared(configs)
    block = {"base": base}
    if any(own):
        block["runs"] = own
    block["grid"] = {"seed": seeds}
    return block


def claim_blocks(ledger: claims.Ledger) -> tuple[list[dict], list[str]]:
    """For each claim with tests it leaves undecided: its points' configurations at the seeds per
    configuration that would give stats.POWER at the report's level (seeds already run are skipped
    by the sweep: same run ids). Returns the blocks and a line on each claim left out, with why."""
    blocks, notes = [], []
    for f in ledger.findings:
        v = ledger.verdict(f)
        if v.verdict != claims.UNDECIDED:
            continue
        if not f.tests:
            notes.append(f"{f.claim}: {f.why}; run {f.fill}")
            continue
        open_tests = [t for t in f.tests if t.decision is None or not t.decision.decided]
        # (fewest, most) seeds: a range where some points have no seed variance of their own yet
        needs = [f.comparison.seeds_needed(t.weights, ledger.alpha) for t in open_tests]
        if any(low is None for low, _ in needs):
            notes.append(f"{f.claim}: no number of seeds up to {stats.MAX_SEEDS} would decide it")
            continue
        low = max(n[0] for n in needs)
        high = None if any(n[1] is None for n in needs) else max(n[1] for n in needs)
        seeds = high or stats.MAX_SEEDS
        lo_sd, hi_sd = stats.ASSUMED_SEED_SD
        spread = "" if low == high else (f" ({low} if seeds vary {lo_sd:g} times the test set's sampling sd, "
                                         f"{high or f'more than {stats.MAX_SEEDS}'} if {hi_sd:g} times)")
        keys = {k for t in open_tests for k, w in t.weights.items() if w}
        points = f.comparison.points[f.comparison.points["key"].isin(keys)]
        configs = [config_of(row, defaults=False) for _, row in points.iterrows()]
        blocks.append({"name": f"{f.claim}: {seeds} seeds per configuration for {stats.POWER:.0%} power{spread}",
                       **_block(configs, list(range(seeds)))})
    return blocks, notes


def next_params(results_dir: Path, ledger: claims.Ledger, found: shape.Star | None, budget: float | None = None) -> str:
    """The params file's text from a report's ledger and star sweep (outline.Runs computes each
    once): a comment per block saying why it is there, then the YAML."""
    comments, sweeps = [], []
    if found is None:
        comments.append("No recommended shape: no star sweep among these runs (run params/shape.yaml first).")
    else:
        block, why = shape_block(found, budget or shape.BUDGET_FACTOR * found.largest_flops)
        comments.append(why)
        sweeps += [block] if block else []
    blocks, notes = claim_blocks(ledger)
    for block in blocks:
        comments.append(f"{block['name']} (the claims table leaves it undecided at the report's error level, "
                        f"{ledger.alpha:.2g} per test).")
    sweeps += blocks
    comments += [f"Not here: {note}." for note in notes]
    if not sweeps:
        raise ValueError(f"{results_dir}: nothing to run next: no star sweep to extend and no undecided claim "
                         "that more seeds would decide")
    date = datetime.date.today().isoformat()
    head = [f"# What to run next, from the runs in {results_dir} (vitlab next, {date}).",
            "# Runs already recorded there are skipped when this file is swept into it.",
            *(f"# - {line}" for line in comments)]
    spec = {"name": "next", "description": f"What to run next after the runs in {results_dir.name} (vitlab next, {date})",
            "sweeps": sweeps}
    return "\n".join(head) + "\n" + yaml.safe_dump(spec, sort_keys=False, width=120, default_flow_style=None)


def reading(results_dir: Path, ledger: claims.Ledger, found: shape.Star | None) -> str:
    """The report's last word, as Markdown: the params file `vitlab next` would write."""
    try:
        text = next_params(Path(results_dir), ledger, found)
    except ValueError:
        return "*Nothing to run next: no star sweep to extend and no undecided claim that more seeds would decide.*"
    return (f"`vitlab next {results_dir}` writes this params file (`{Path(results_dir) / 'next.yaml'}`); "
            f"`vitlab sweep` on it into the same directory trains only what is not yet recorded:\n\n```yaml\n{text}```")
