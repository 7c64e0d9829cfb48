"""Which runs form a study: the runs that differ along one axis, or along the paper's scaling
directions; per-point tuning; and the comparisons every figure and verdict share (frontiers,
scaling-direction trends), each chosen on the validation split and measured on the test split."""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from vitlab.report import scaling, stats
from vitlab.run import datasets
from vitlab.run.config import RunConfig
from vitlab.study import results

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


def point_keys(runs: pd.DataFrame) -> pd.Series:
    """One hashable key per run naming its configuration without the seed: the study point
    whose seeds are repeats of one another."""
    cols = [f for f in CONFIG_FIELDS if f != "seed"]
    return pd.Series([tuple(None if pd.isna(v) else v for v in row) for row in runs[cols].itertuples(index=False)],
                     index=runs.index, dtype=object)


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
    runs = ok_runs(df)
    if model is not None:
        runs = runs[runs["model"] == model]
    keys = [f for f in CONFIG_FIELDS if f not in (axis, "seed", *COUPLED.get(axis, ()))]
    grouped = runs.groupby(keys, dropna=False, sort=False)
    score = pd.DataFrame({"values": grouped[axis].transform("nunique"), "runs": grouped[axis].transform("size"),
                          "group": grouped.ngroup()})
    if score.empty or score["values"].max() < 2:
        return runs.iloc[:0]
    best = score.sort_values(["values", "runs", "group"], ascending=[False, False, True])["group"].iloc[0]
    return runs[score["group"] == best].sort_values(axis)


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
    from the base run (paper Appendix D.2): depth, width, MLP size, patch size, two of them
    together ("width + MLP size", as width sweeps that scaled the MLP with it did), or all
    (three or more at once).

    The runs are the largest group equal in every field outside depth, width, heads, MLP
    size, patch size and seed; the base is the most common depth, width, MLP size and patch size
    in it. The base run belongs to every direction, so each direction's curve starts from it.
    """
    runs = ok_runs(df)
    runs = runs[runs["model"] == model]
    moving = [f for fields_ in DIRECTIONS.values() for f in fields_]
    keys = [f for f in CONFIG_FIELDS if f not in (*moving, "seed")]
    groups = [g for _, g in runs.groupby(keys, dropna=False, sort=False)]
    if not groups:
        return runs.assign(direction=pd.Series(dtype=str))
    group = max(groups, key=len)
    base = {fields_[0]: group[fields_[0]].mode().iloc[0] for fields_ in DIRECTIONS.values()}
    labels = []
    for _, run in group.iterrows():
        moved = [name for name, fields_ in DIRECTIONS.items() if run[fields_[0]] != base[fields_[0]]]
        labels.append(" + ".join(moved) if 0 < len(moved) < 3 else "all" if moved else None)
    every = [*DIRECTIONS, *sorted({label for label in labels if label and label not in DIRECTIONS})]
    rows = [run.to_dict() | {"direction": name}
            for (_, run), label in zip(group.iterrows(), labels) for name in ([label] if label else every)]
    out = pd.DataFrame(rows)
    # A direction holding only the base point (however many seeds) says nothing.
    counts = out.assign(point=point_keys(out)).groupby("direction")["point"].nunique()
    return out[out["direction"].map(counts) > 1].reset_index(drop=True)


# Two families are compared only on runs equal in these (and in the step or epoch budget).
COMPARABLE = ("dataset", "image_size", "augment")


def budget(runs: pd.DataFrame) -> pd.Series:
    """Each run's training budget as a label: its steps when set, else its epochs."""
    return pd.Series([f"{s:.0f} steps" if pd.notna(s) else f"{e:.0f} epochs"
                      for s, e in zip(runs["steps"], runs["epochs"])], index=runs.index, dtype=object)


def comparable_groups(runs: pd.DataFrame) -> list[pd.DataFrame]:
    """Runs split into groups within which families may be compared (same dataset, image size,
    augmentation and budget), largest first."""
    if runs.empty:
        return []
    keyed = runs.assign(_budget=budget(runs))
    groups = [g.drop(columns="_budget") for _, g in keyed.groupby([*COMPARABLE, "_budget"], dropna=False, sort=False)]
    return sorted(groups, key=len, reverse=True)


def differs(a: pd.DataFrame, b: pd.DataFrame, names=("ViT", "ResNet")) -> str:
    """Which comparable field two sets of runs differ in, as text for a 'not comparable' verdict."""
    out = []
    for field, va, vb in [*((f, a[f], b[f]) for f in COMPARABLE), ("budget", budget(a), budget(b))]:
        sa, sb = set(va.dropna().astype(str)), set(vb.dropna().astype(str))
        if sa != sb:
            out.append(f"{field} ({names[0]}: {', '.join(sorted(sa)) or '-'}; {names[1]}: {', '.join(sorted(sb)) or '-'})")
    return "; ".join(out) or "no common study"


@dataclass
class Comparison:
    """Study points (seed means) of the runs a comparison draws on. Each point carries its own
    seed-to-seed variance of test accuracy (`var`, `var_df` = seeds - 1; NaN with one seed).
    When `split`, a point's validation accuracy (what chooses it) is the mean of its first half
    of seeds and its test accuracy (what estimates it) the mean of the rest, so that a point
    chosen for a lucky seed is not also measured on that seed; `n` is the seeds estimating, and
    the variance comes from all its seeds (the choosing seed's luck can only widen it)."""
    points: pd.DataFrame  # one row per point: its fields, val/test accuracy and error, n, var, var_df
    test_size: int
    split: bool = False

    def _rows(self) -> dict:
        return {k: (float(a), int(n), float(v), int(d), answers) for k, a, n, v, d, answers in
                self.points[["key", "test_accuracy", "n", "var", "var_df", "answers"]].itertuples(index=False)}

    def cells(self, weights: dict, seeds: int | None = None) -> list[stats.Cell]:
        """Contrast cells from {point key: weight} (weights on accuracy); with `seeds`, as the
        cells would be with that many seeds per point, at the variance seen (for planning)."""
        rows = self._rows()
        if seeds is None:
            return [stats.Cell(w, *rows[k]) for k, w in weights.items() if w]
        n = seeds - seeds // 2 if self.split else seeds
        return [stats.Cell(w, rows[k][0], n, rows[k][2], seeds - 1, rows[k][4]) for k, w in weights.items() if w]

    def contrast(self, weights: dict) -> stats.Estimate | None:
        return stats.contrast(self.cells(weights), self.test_size)

    def unrepeated(self, weights: dict) -> list:
        """The points of a contrast that were run with one seed (no variance of their own)."""
        rows = self._rows()
        return [k for k, w in weights.items() if w and rows[k][3] < 1]

    def seeds_needed(self, weights: dict, alpha: float) -> tuple[int | None, int | None]:
        """Seeds per configuration giving stats.POWER to decide this contrast at alpha, as the
        fewest and most: equal where every point has its own seed variance; else a range over
        the seed sd stats.ASSUMED_SEED_SD assumes (in multiples of the test set's sampling sd)
        at the points without one. None: no number up to stats.MAX_SEEDS would."""
        def needed(multiple: float) -> int | None:
            def cells_at(n):
                return [c if np.isfinite(c.var) else
                        stats.Cell(c.weight, c.mean, c.n, multiple ** 2 * c.mean * (1 - c.mean) / self.test_size, c.df,
                                   c.answers)
                        for c in self.cells(weights, n)]
            return stats.seeds_needed(cells_at, self.test_size, alpha)
        if not self.unrepeated(weights):
            return (needed(1.0),) * 2
        low, high = stats.ASSUMED_SEED_SD
        return needed(low), needed(high)

    def noise_text(self, weights: dict) -> str:
        cells = [c for c in self.cells(weights) if c.df >= 1]
        if not cells:
            return ""
        low, high = (f"{np.sqrt(f(c.var for c in cells)):.3f}" for f in (min, max))
        spread = low if low == high else f"{low} to {high}"
        return (f"seed sd {spread} estimated at each of {len(cells)} points from its own seeds, plus sampling error "
                f"of {self.test_size:,} test images")

    def scaling_law(self, points: pd.DataFrame, x: str):
        """The saturating power law of test error against x over some of this comparison's points
        (e.g. a frontier), each point's noise from its own seed variance and the test set; None
        when there are too few distinct x values."""
        if points.empty or points[x].nunique() < scaling.MIN_X:
            return None
        sd, df = None, None
        if (points["var_df"] >= 1).all():
            p, n = points["test_accuracy"].to_numpy(), points["n"].to_numpy()
            seed = points["var"].to_numpy() / n
            sd = np.sqrt(seed + p * (1 - p) / self.test_size)
            # Welch-Satterthwaite df of the points' mean noise variance.
            df = seed.sum() ** 2 / (seed ** 2 / points["var_df"].to_numpy()).sum() if seed.sum() > 0 else None
        return scaling.fit_saturating_power_law(points[x], points["test_error"], noise_sd=sd, noise_df=df)


def compare(runs: pd.DataFrame, split: bool = False) -> Comparison:
    """The study points of successful runs, each with its own seed variance (see Comparison)."""
    runs = runs if "test_error" in runs else ok_runs(runs)
    if runs.empty:
        return Comparison(runs.assign(key=None, n=0, var=np.nan, var_df=0, answers=None), 1, split)
    runs = runs.assign(key=point_keys(runs)).sort_values("seed", kind="stable")
    grouped = runs.groupby("key", sort=False)
    points = grouped.first()
    rank, seeds = grouped.cumcount(), grouped["seed"].transform("size")
    if split:  # a single seed both chooses and estimates: its variance is unknown, so nothing is decided on it
        choose, estimate = (rank < seeds // 2) | (seeds == 1), rank >= seeds // 2
    else:
        choose = estimate = pd.Series(True, index=runs.index)
    points["val_accuracy"] = runs[choose].groupby("key", sort=False)["val_accuracy"].mean()
    points["test_accuracy"] = runs[estimate].groupby("key", sort=False)["test_accuracy"].mean()
    points["n"] = estimate.groupby(runs["key"], sort=False).sum()
    points["train_flops"] = grouped["train_flops"].mean()
    points["seeds"] = grouped.size()
    points["var"], points["var_df"] = grouped["test_accuracy"].var(ddof=1), points["seeds"] - 1
    points["test_error"], points["val_error"] = 1 - points["test_accuracy"], 1 - points["val_accuracy"]
    test_size = datasets.spec(runs["dataset"].iloc[0]).test_size
    points["answers"] = [answers.get(k) for k in points.index] if (answers := _answers(runs[estimate], test_size)) \
        else None
    return Comparison(points.reset_index(), test_size, split)


def _answers(runs: pd.DataFrame, test_size: int) -> dict:
    """Each point's per-image answers (the share of its runs right on each test image), where
    every run of the point recorded them."""
    if "test_correct" not in runs:
        return {}
    return {key: np.mean([results.unpack_bits(t, test_size) for t in group["test_correct"]], axis=0)
            for key, group in runs.groupby("key", sort=False) if group["test_correct"].notna().all()}


def compute_group(df: pd.DataFrame, families=("vit",)) -> pd.DataFrame:
    """The runs on which families are compared at equal compute: successful runs trained from
    scratch (not fine-tuned), comparable (one dataset, image size, augmentation and budget kind)
    and of one training-set size: the group holding the most of the given families, then runs."""
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
    return runs.iloc[:0] if best is None else best[1]


def frontier(points: pd.DataFrame) -> pd.DataFrame:
    """The Pareto frontier of study points in training compute and validation error (chosen
    on validation, so that its test errors are not picked for luck), sorted by compute."""
    if points.empty or points["val_error"].isna().all():
        return points.iloc[:0]
    points = points[points["val_error"].notna()]
    return points[scaling.pareto_frontier(points["train_flops"], points["val_error"])].sort_values("train_flops")


def frontiers(runs: pd.DataFrame, families) -> tuple[Comparison, dict[str, pd.DataFrame]]:
    """The study points of runs (one compute_group) and each family's frontier among them,
    chosen on the first half of each point's seeds and measured on the rest (Comparison), so a
    family with more candidate points does not win by picking lucky seeds."""
    c = compare(runs, split=True)
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
        if direction not in DIRECTIONS:  # several at once: no one direction's trend
            continue
        points = comparison.points[comparison.points["key"].isin(set(point_keys(part)))]
        u = np.log10(points["train_flops"].to_numpy())
        if len(np.unique(u)) < 2:
            continue
        c = (u - u.mean()) / ((u - u.mean()) ** 2).sum()
        # Weights on accuracy whose contrast is the slope of error (= -slope of accuracy).
        trends[direction] = {"weights": dict(zip(points["key"], -c)), "points": len(points)}
    return comparison, trends
