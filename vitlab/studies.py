"""Which runs form a study: the runs that differ along one axis, or along the paper's scaling directions."""
from __future__ import annotations

from dataclasses import fields

import pandas as pd

from vitlab.config import RunConfig

CONFIG_FIELDS = tuple(f.name for f in fields(RunConfig))
# Axes that a sweep moves together with another (a width sweep also scales heads
# and MLP size), so they do not split that axis's study into one-point groups.
COUPLED = {"width": ("heads", "mlp_dim")}
# The paper's Appendix D.2 scaling directions and the fields each moves.
DIRECTIONS = {"depth": ("depth",), "width": ("width", "heads", "mlp_dim"), "patch size": ("patch_size",)}


def ok_runs(df: pd.DataFrame) -> pd.DataFrame:
    out = df[df["status"] == "ok"].copy()
    out["test_error"] = 1 - out["test_accuracy"]
    return out


def one_factor_study(df: pd.DataFrame, axis: str, model: str | None = None) -> pd.DataFrame:
    """The largest set of successful runs that differ only in `axis` (and seed).

    Runs are grouped by every other config field; the group that spans the most
    values of `axis` is the study. Seeds stay in, so repeated runs give error bars.
    """
    runs = ok_runs(df)
    if model is not None:
        runs = runs[runs["model"] == model]
    keys = [f for f in CONFIG_FIELDS if f not in (axis, "seed", *COUPLED.get(axis, ()))]
    best = None
    for _, group in runs.groupby(keys, dropna=False, sort=False):
        score = (group[axis].nunique(), len(group))
        if best is None or score > best[0]:
            best = (score, group)
    if best is None or best[0][0] < 2:
        return runs.iloc[:0]
    return best[1].sort_values(axis)


def two_factor_study(df: pd.DataFrame, a: str, b: str, model: str | None = None) -> pd.DataFrame:
    """The largest set of successful runs that differ only in `a` and `b` (and seed)."""
    runs = ok_runs(df)
    if model is not None:
        runs = runs[runs["model"] == model]
    keys = [f for f in CONFIG_FIELDS if f not in (a, b, "seed", *COUPLED.get(a, ()), *COUPLED.get(b, ()))]
    groups = [g for _, g in runs.groupby(keys, dropna=False, sort=False)]
    if not groups:
        return runs.iloc[:0]
    return max(groups, key=lambda g: (g[a].nunique() * g[b].nunique(), len(g)))


def scaling_directions(df: pd.DataFrame, model: str = "vit") -> pd.DataFrame:
    """Successful runs of one family labelled by the scaling direction that leads to them
    from the base run (paper Appendix D.2): depth, width, patch size, or all (several at once).

    The runs are the largest group equal in every field outside depth, width, heads, MLP
    size, patch size and seed; the base is the most common depth, width and patch size in it.
    The base run belongs to every direction, so each direction's curve starts from it.
    """
    runs = ok_runs(df)
    runs = runs[runs["model"] == model]
    moving = [f for fields_ in DIRECTIONS.values() for f in fields_]
    keys = [f for f in CONFIG_FIELDS if f not in (*moving, "seed")]
    groups = [g for _, g in runs.groupby(keys, dropna=False, sort=False)]
    if not groups:
        return runs.assign(direction=pd.Series(dtype=str))
    group = max(groups, key=len)
    base = {f: group[f].mode().iloc[0] for f in ("depth", "width", "patch_size")}
    rows = []
    for _, run in group.iterrows():
        moved = [name for name, fields_ in DIRECTIONS.items() if run[fields_[0]] != base[fields_[0]]]
        if not moved:
            rows += [run.to_dict() | {"direction": name} for name in DIRECTIONS]
            if len(group) > 1:
                rows.append(run.to_dict() | {"direction": "all"})
        else:
            rows.append(run.to_dict() | {"direction": moved[0] if len(moved) == 1 else "all"})
    out = pd.DataFrame(rows)
    # A direction holding only the base run says nothing.
    counts = out.groupby("direction")["run_id"].nunique()
    return out[out["direction"].map(counts) > 1].reset_index(drop=True)
