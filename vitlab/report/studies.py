"""Which runs form a study: the runs that differ along one axis, or along the paper's scaling
directions; the groups in which families may be compared; per-point tuning. Each choice reads
only the runs' configurations, and is made once per set of them (vitlab.report.points compares
the study points it gives)."""
from __future__ import annotations

import functools
from dataclasses import fields

import numpy as np
import pandas as pd

from vitlab.run.config import RunConfig

CONFIG_FIELDS = tuple(f.name for f in fields(RunConfig))
# Axes that a sweep moves together with another (heads follow the width), so they do not split
# that axis's study into one-point groups.
COUPLED = {"width": ("heads",)}
# The paper's Appendix D.2 scaling directions and the fields each moves: width (the hidden size,
# heads following it) and MLP size apart, as its Fig. 8 scales them and SoViT finds them to differ.
DIRECTIONS = {"depth": ("depth",), "width": ("width", "heads"), "MLP size": ("mlp_dim",), "patch size": ("patch_size",)}


def ok_runs(df: pd.DataFrame) -> pd.DataFrame:
    out = df[df["status"] == "ok"].copy()
    out["test_error"] = 1 - out["test_accuracy"]
    out["val_error"] = 1 - out["val_accuracy"] if "val_accuracy" in out else np.nan
    return out


# Which runs form a study reads only the runs' configurations and status, and a report asks for
# the same study in several sections (claims, figures, tables, laws); a simulation of reports
# redraws accuracies over one set of runs hundreds of times. So each choice is kept, keyed by
# those columns and its arguments, and given back as row positions into the caller's own frame,
# which brings the caller's accuracies.
_CHOICES: dict = {}
_MAX_CHOICES = 1024


def _by_configuration(choose):
    """Memoise choose(df, *args) -> row positions (or a list of them) on df's configurations;
    choose sees df with its index reset, so that its labels are positions."""
    @functools.wraps(choose)
    def chosen(df: pd.DataFrame, *args):
        key = (choose.__name__, tuple(tuple(a) if isinstance(a, list) else a for a in args), _configurations(df))
        if key not in _CHOICES:
            if len(_CHOICES) >= _MAX_CHOICES:
                _CHOICES.clear()
            _CHOICES[key] = choose(df.reset_index(drop=True), *args)
        return _CHOICES[key]
    return chosen


def _configurations(df: pd.DataFrame) -> tuple:
    """df's status and config fields, row by row, as one hashable value, equal exactly when they
    are (numbers by their bytes, other values themselves, every missing value as None): a third
    of the time pandas' hash_pandas_object takes over these many small columns."""
    columns = [c for c in ("status", *CONFIG_FIELDS) if c in df]
    parts = [tuple(columns)]
    for column in (df[c] for c in columns):
        values = column.to_numpy()
        parts.append(values.tobytes() if values.dtype.kind in "biufcmM" else tuple(_values(column)))
    return tuple(parts)


def point_keys(runs: pd.DataFrame) -> pd.Series:
    """One hashable key per run naming its configuration without the seed: the study point
    whose seeds are repeats of one another."""
    return pd.Series(list(zip(*(_values(runs[f]) for f in CONFIG_FIELDS if f != "seed"))), index=runs.index,
                     dtype=object)


def _values(column: pd.Series) -> list:
    """A column's values as Python objects, every missing value as None (equal to itself, which
    NaN is not)."""
    values = column.to_numpy(dtype=object, copy=True)
    values[pd.isna(values)] = None
    return values.tolist()


def tuned(df: pd.DataFrame, axes) -> pd.DataFrame:
    """Per-point tuning as the paper does it: the tuning axes (say lr, weight_decay) are a
    nuisance; at each study point and seed one configuration stays, the one best on validation
    over the point's *other* seeds (its own where it has none). A run chosen on its own seed's
    validation score would carry that seed's luck into its test score too, favouring whichever
    point had more candidates. The chosen values move to `chosen_<axis>` columns and the axes
    themselves are emptied, so that the kept runs of one point are seeds of one configuration
    to every study after this."""
    axes = [a for a in axes if a in df]
    if not axes:
        return df
    runs = df[(df["status"] == "ok") & df["val_accuracy"].notna()] if "val_accuracy" in df else df.iloc[:0]
    keys = [f for f in CONFIG_FIELDS if f not in axes]
    val = runs["val_accuracy"].astype(float)
    candidate = runs.groupby([f for f in CONFIG_FIELDS if f != "seed"], dropna=False, sort=False)["val_accuracy"]
    seeds = candidate.transform("size")
    others = ((candidate.transform("sum") - val) / (seeds - 1)).where(seeds > 1, val)
    best = runs.loc[others.groupby([runs[k] for k in keys], dropna=False, sort=False).idxmax()]
    best = best.assign(**{f"chosen_{a}": best[a] for a in axes}, **{a: None for a in axes},
                       candidates=runs.groupby(keys, dropna=False, sort=False)["run_id"].transform("size")[best.index])
    return pd.concat([best, df[df["status"] != "ok"]], ignore_index=True)


def one_factor_study(df: pd.DataFrame, axis: str, model: str | None = None) -> pd.DataFrame:
    """The largest set of successful runs that differ only in `axis` (and seed).

    Runs are grouped by every other config field; the group that spans the most
    values of `axis` is the study. Seeds stay in, so repeated runs give error bars.
    """
    return ok_runs(df.iloc[_one_factor(df, axis, model)])


@_by_configuration
def _one_factor(df: pd.DataFrame, axis: str, model: str | None) -> pd.Index:
    runs = ok_runs(df)
    if model is not None:
        runs = runs[runs["model"] == model]
    keys = [f for f in CONFIG_FIELDS if f not in (axis, "seed", *COUPLED.get(axis, ()))]
    grouped = runs.groupby(keys, dropna=False, sort=False)
    score = pd.DataFrame({"values": grouped[axis].transform("nunique"), "runs": grouped[axis].transform("size"),
                          "group": grouped.ngroup()})
    if score.empty or score["values"].max() < 2:
        return runs.index[:0]
    best = score.sort_values(["values", "runs", "group"], ascending=[False, False, True])["group"].iloc[0]
    return runs[score["group"] == best].sort_values(axis).index


def two_factor_study(df: pd.DataFrame, a: str, b: str, model: str | None = None) -> pd.DataFrame:
    """The largest set of successful runs that differ only in `a` and `b` (and seed)."""
    return ok_runs(df.iloc[_two_factor(df, a, b, model)])


@_by_configuration
def _two_factor(df: pd.DataFrame, a: str, b: str, model: str | None) -> pd.Index:
    runs = ok_runs(df)
    if model is not None:
        runs = runs[runs["model"] == model]
    keys = [f for f in CONFIG_FIELDS if f not in (a, b, "seed", *COUPLED.get(a, ()), *COUPLED.get(b, ()))]
    groups = [g for _, g in runs.groupby(keys, dropna=False, sort=False)]
    if not groups:
        return runs.index[:0]
    return max(groups, key=lambda g: (g[a].nunique() * g[b].nunique(), len(g))).index


def scaling_directions(df: pd.DataFrame, model: str = "vit") -> pd.DataFrame:
    """Successful runs of one family labelled by the scaling direction that leads to them
    from the base run (paper Appendix D.2): depth, width, MLP size, patch size, two of them
    together ("width + MLP size", as width sweeps that scaled the MLP with it did), or all
    (three or more at once).

    The runs are the largest group equal in every field outside depth, width, heads, MLP
    size, patch size and seed; the base is the most common depth, width, MLP size and patch size
    in it. The base run belongs to every direction, so each direction's curve starts from it.
    """
    rows, directions = _directions(df, model)
    return ok_runs(df.iloc[rows]).assign(direction=directions).reset_index(drop=True)


@_by_configuration
def _directions(df: pd.DataFrame, model: str) -> tuple[list, list[str]]:
    """scaling_directions' rows (positions, a run once per direction it belongs to) and their
    directions."""
    runs = ok_runs(df)
    runs = runs[runs["model"] == model]
    moving = [f for fields_ in DIRECTIONS.values() for f in fields_]
    keys = [f for f in CONFIG_FIELDS if f not in (*moving, "seed")]
    groups = [g for _, g in runs.groupby(keys, dropna=False, sort=False)]
    if not groups:
        return [], []
    group = max(groups, key=len)
    firsts = [fields_[0] for fields_ in DIRECTIONS.values()]
    base = {field: group[field].mode().iloc[0] for field in firsts}
    labels = []
    for values in group[firsts].itertuples(index=False):
        moved = [name for name, field, value in zip(DIRECTIONS, firsts, values) if value != base[field]]
        labels.append(" + ".join(moved) if 0 < len(moved) < 3 else "all" if moved else None)
    every = [*DIRECTIONS, *sorted({label for label in labels if label and label not in DIRECTIONS})]
    rows = [(index, name, point) for index, point, label in zip(group.index, point_keys(group), labels)
            for name in ([label] if label else every)]
    # A direction holding only the base point (however many seeds) says nothing.
    points: dict[str, set] = {}
    for _, name, point in rows:
        points.setdefault(name, set()).add(point)
    kept = [(index, name) for index, name, _ in rows if len(points[name]) > 1]
    return [index for index, _ in kept], [name for _, name in kept]


# Two families are compared only on runs equal in these (and in the step or epoch budget).
COMPARABLE = ("dataset", "image_size", "augment")


def budget(runs: pd.DataFrame) -> pd.Series:
    """Each run's training budget as a label: its steps when set, else its epochs."""
    return pd.Series([f"{s:.0f} steps" if pd.notna(s) else f"{e:.0f} epochs"
                      for s, e in zip(runs["steps"], runs["epochs"])], index=runs.index, dtype=object)


def comparable_groups(runs: pd.DataFrame) -> list[pd.DataFrame]:
    """Runs split into groups within which families may be compared (same dataset, image size,
    augmentation and budget), largest first."""
    return [runs.iloc[rows] for rows in _comparable(runs)]


@_by_configuration
def _comparable(runs: pd.DataFrame) -> list[pd.Index]:
    if runs.empty:
        return []
    keyed = runs.assign(_budget=budget(runs))
    groups = [g.index for _, g in keyed.groupby([*COMPARABLE, "_budget"], dropna=False, sort=False)]
    return sorted(groups, key=len, reverse=True)


def differs(a: pd.DataFrame, b: pd.DataFrame, names=("ViT", "ResNet")) -> str:
    """Which comparable field two sets of runs differ in, as text for a 'not comparable' verdict."""
    out = []
    for field, va, vb in [*((f, a[f], b[f]) for f in COMPARABLE), ("budget", budget(a), budget(b))]:
        sa, sb = set(va.dropna().astype(str)), set(vb.dropna().astype(str))
        if sa != sb:
            out.append(f"{field} ({names[0]}: {', '.join(sorted(sa)) or '-'}; {names[1]}: {', '.join(sorted(sb)) or '-'})")
    return "; ".join(out) or "no common study"


def compute_group(df: pd.DataFrame, families=("vit",)) -> pd.DataFrame:
    """The runs on which families are compared at equal compute: successful runs trained from
    scratch (not fine-tuned), comparable (one dataset, image size, augmentation and budget kind)
    and of one training-set size: the group holding the most of the given families, then runs."""
    return ok_runs(df.iloc[_compute_group(df, tuple(families))])


@_by_configuration
def _compute_group(df: pd.DataFrame, families: tuple) -> pd.Index:
    runs = ok_runs(df)
    if "pretrained" in runs:
        runs = runs[runs["pretrained"].isna()]
    best = None
    for group in comparable_groups(runs):
        for _, part in group.groupby("train_size"):
            of = part[part["model"].isin(families)]
            score = (of["model"].nunique(), len(of))
            if score[1] and (best is None or score > best[0]):
                best = (score, part)
    return runs.index[:0] if best is None else best[1].index
