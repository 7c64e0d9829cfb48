"""Which runs form a study: the runs that differ along one axis, or along the paper's scaling
directions; per-point tuning; and the comparisons every figure and verdict share (frontiers,
scaling-direction trends), each chosen on the validation split and measured on the test split."""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from vitlab import datasets, scaling, stats
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
    out["val_error"] = 1 - out["val_accuracy"] if "val_accuracy" in out else np.nan
    return out


def point_keys(runs: pd.DataFrame) -> pd.Series:
    """One hashable key per run naming its configuration without the seed: the study point
    whose seeds are repeats of one another."""
    cols = [f for f in CONFIG_FIELDS if f != "seed"]
    return pd.Series([tuple(None if pd.isna(v) else v for v in row) for row in runs[cols].itertuples(index=False)],
                     index=runs.index, dtype=object)


def tuned(df: pd.DataFrame, axes) -> pd.DataFrame:
    """Per-point tuning as the paper does it: the tuning axes (say lr, weight_decay) are a
    nuisance; at each study point and seed only the configuration best on validation stays.
    The chosen values move to `chosen_<axis>` columns and the axes themselves are emptied, so
    that the kept runs of one point are seeds of one configuration to every study after this."""
    axes = [a for a in axes if a in df]
    if not axes:
        return df
    runs = df[(df["status"] == "ok") & df["val_accuracy"].notna()] if "val_accuracy" in df else df.iloc[:0]
    keys = [f for f in CONFIG_FIELDS if f not in axes]
    best = runs.loc[runs.groupby(keys, dropna=False, sort=False)["val_accuracy"].idxmax()]
    best = best.assign(**{f"chosen_{a}": best[a] for a in axes}, **{a: None for a in axes},
                       candidates=runs.groupby(keys, dropna=False, sort=False)["run_id"].transform("size")[best.index])
    return pd.concat([best, df[df["status"] != "ok"]], ignore_index=True)


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
    # A direction holding only the base point (however many seeds) says nothing.
    counts = out.assign(point=point_keys(out)).groupby("direction")["point"].nunique()
    return out[out["direction"].map(counts) > 1].reset_index(drop=True)


@dataclass
class Comparison:
    """Study points (seed means) of the runs a comparison draws on, with their seed noise."""
    points: pd.DataFrame  # one row per point: its fields, mean val/test accuracy and error, seeds n
    noise: stats.SeedNoise
    test_size: int

    def cells(self, weights: dict) -> list[stats.Cell]:
        """Contrast cells from {point key: weight} (weights on accuracy)."""
        at = dict(zip(self.points["key"], zip(self.points["test_accuracy"], self.points["n"])))
        return [stats.Cell(w, float(at[k][0]), int(at[k][1])) for k, w in weights.items() if w]

    def contrast(self, weights: dict) -> stats.Estimate | None:
        return stats.contrast(self.cells(weights), self.noise, self.test_size)

    def seeds_needed(self, weights: dict) -> int | None:
        """Seeds per point that would decide this contrast if seeds varied by the test set's
        sampling error alone (the least they could vary), when no point has repeats."""
        cells = self.cells(weights)
        sd = float(np.sqrt(np.mean([c.mean * (1 - c.mean) for c in cells]) / self.test_size))
        return stats.seeds_needed(cells, len(self.points), self.test_size, sd)

    def scaling_law(self, points: pd.DataFrame, x: str):
        """The saturating power law of test error against x over some of this comparison's points
        (e.g. a frontier), each point's noise from the pooled seed variance and the test set; None
        when there are too few distinct x values."""
        if points.empty or points[x].nunique() < scaling.MIN_THREE_PARAMETER_X:
            return None
        sd, df = None, None
        if self.noise.df:
            p = points["test_accuracy"].to_numpy()
            sd = np.sqrt(self.noise.var / points["n"].to_numpy() + p * (1 - p) / self.test_size)
            df = self.noise.df
        return scaling.fit_saturating_power_law(points[x], points["test_error"], noise_sd=sd, noise_df=df)


def compare(runs: pd.DataFrame) -> Comparison:
    """The study points of successful runs, with seed noise pooled over all of them."""
    runs = runs if "test_error" in runs else ok_runs(runs)
    keys = point_keys(runs)
    noise = stats.seed_noise(runs["test_accuracy"], keys)
    if runs.empty:
        return Comparison(runs.assign(key=None, n=0), noise, 1)
    grouped = runs.assign(key=keys).groupby("key", sort=False)
    points = grouped.first()
    points[["val_accuracy", "test_accuracy", "train_flops"]] = grouped[
        ["val_accuracy", "test_accuracy", "train_flops"]].mean()
    points["n"] = grouped.size()
    points["test_error"], points["val_error"] = 1 - points["test_accuracy"], 1 - points["val_accuracy"]
    test_size = datasets.spec(runs["dataset"].iloc[0]).test_size
    return Comparison(points.reset_index(), noise, test_size)


def compute_group(df: pd.DataFrame, families=("vit",)) -> pd.DataFrame:
    """The runs on which families are compared at equal compute: successful runs trained from
    scratch (not fine-tuned) on one dataset and one training-set size, the group holding the
    most runs of the given families (all its runs, so that seed noise pools over all of them)."""
    runs = ok_runs(df)
    if "pretrained" in runs:
        runs = runs[runs["pretrained"].isna()]
    of = runs[runs["model"].isin(families)]
    if of.empty:
        return of
    sizes = of.groupby(["dataset", "train_size"]).agg(families=("model", "nunique"), runs=("model", "size"))
    dataset, train_size = sizes.sort_values(["families", "runs"]).index[-1]
    return runs[(runs["dataset"] == dataset) & (runs["train_size"] == train_size)]


def frontier(points: pd.DataFrame) -> pd.DataFrame:
    """The Pareto frontier of study points in training compute and validation error (chosen
    on validation, so that its test errors are not picked for luck), sorted by compute."""
    if points.empty or points["val_error"].isna().all():
        return points.iloc[:0]
    points = points[points["val_error"].notna()]
    return points[scaling.pareto_frontier(points["train_flops"], points["val_error"])].sort_values("train_flops")


def frontiers(runs: pd.DataFrame, families) -> tuple[Comparison, dict[str, pd.DataFrame]]:
    """The study points of runs (one compute_group) and each family's frontier among them."""
    c = compare(runs)
    return c, {m: frontier(c.points[c.points["model"] == m]) for m in families}


def frontier_gaps(better: pd.DataFrame, worse: pd.DataFrame) -> list[dict]:
    """At each frontier point of `better` inside the compute range of `worse`'s frontier: weights
    on point accuracies whose sum is better's accuracy minus worse's (log-linear interpolation
    between worse's neighbouring frontier points). Each item also names the point's compute."""
    if len(better) < 1 or len(worse) < 2:
        return []
    x = np.log10(worse["train_flops"].to_numpy())
    keys = worse["key"].tolist()
    out = []
    for _, point in better.iterrows():
        at = np.log10(point["train_flops"])
        if not x[0] <= at <= x[-1]:
            continue
        j = min(int(np.searchsorted(x, at, side="right")) - 1, len(x) - 2)
        lam = (at - x[j]) / (x[j + 1] - x[j]) if x[j + 1] > x[j] else 0.0
        weights = combine(({point["key"]: 1.0}, 1), ({keys[j]: 1 - lam}, -1), ({keys[j + 1]: lam}, -1))
        out.append({"train_flops": point["train_flops"], "weights": weights})
    return out


def combine(*parts: tuple[dict, float]) -> dict:
    """The weights of sum(factor * contrast) over (weights, factor) parts."""
    out: dict = {}
    for weights, factor in parts:
        for k, w in weights.items():
            out[k] = out.get(k, 0.0) + factor * w
    return out


def mean_weights(items: list[dict]) -> dict:
    """The weights of the mean of several frontier gaps."""
    return combine(*((item["weights"], 1 / len(items)) for item in items))


def direction_trends(df: pd.DataFrame, model: str = "vit") -> tuple[Comparison, dict[str, dict]]:
    """Each scaling direction's trend: test error per 10x training compute, the least-squares
    slope over its study points (seed means) against log10 compute, as weights on point
    accuracies whose contrast is that slope (so a shared base point's noise is counted once,
    however many directions hold it)."""
    runs = scaling_directions(df, model)
    comparison = compare(runs.drop_duplicates("run_id") if not runs.empty else ok_runs(df).iloc[:0])
    trends = {}
    for direction, part in (runs.groupby("direction") if not runs.empty else []):
        if direction == "all":
            continue
        points = comparison.points[comparison.points["key"].isin(set(point_keys(part)))]
        u = np.log10(points["train_flops"].to_numpy())
        if len(np.unique(u)) < 2:
            continue
        c = (u - u.mean()) / ((u - u.mean()) ** 2).sum()
        # Weights on accuracy whose contrast is the slope of error (= -slope of accuracy).
        trends[direction] = {"weights": dict(zip(points["key"], -c)), "points": len(points)}
    return comparison, trends
