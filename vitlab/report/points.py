"""Study points and contrasts of them: each point's seed mean with its own seed-to-seed variance
and its per-image test answers (Comparison); the frontiers, frontier gaps and scaling-direction
trends every figure and verdict shares, each chosen on the validation split and measured on the
test split."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vitlab.report import scaling, stats
from vitlab.report.studies import DIRECTIONS, ok_runs, point_keys, scaling_directions
from vitlab.run import datasets
from vitlab.study import results


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
        p = self.points
        return {k: (float(a), int(n), float(v), int(d), answers) for k, a, n, v, d, answers in
                zip(p["key"], p["test_accuracy"], p["n"], p["var"], p["var_df"], p["answers"])}

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
    # Each point's rows by integer code (its first appearance), aggregated in numpy: a report
    # compares points hundreds of times, and pandas' groupby pays per operation.
    codes, keys = pd.factorize(runs["key"])
    k = len(keys)
    seeds = np.bincount(codes, minlength=k)
    rank = runs.groupby(codes, sort=False).cumcount().to_numpy()
    if split:  # a single seed both chooses and estimates: its variance is unknown, so nothing is decided on it
        choose, estimate = (rank < seeds[codes] // 2) | (seeds[codes] == 1), rank >= seeds[codes] // 2
    else:
        choose = estimate = np.ones(len(runs), dtype=bool)
    test = runs["test_accuracy"].to_numpy(float)
    points = runs.drop(columns="key").groupby(codes, sort=False).first().set_axis(pd.Index(keys, name="key"))
    points["val_accuracy"] = _mean(codes, runs["val_accuracy"].to_numpy(float), choose, k)
    points["test_accuracy"] = _mean(codes, test, estimate, k)
    points["n"] = np.bincount(codes, weights=estimate, minlength=k).astype(int)
    points["train_flops"] = _mean(codes, runs["train_flops"].to_numpy(float), np.ones(len(runs), bool), k)
    points["seeds"] = seeds
    points["var"], points["var_df"] = _var(codes, test, k), points["seeds"] - 1
    points["test_error"], points["val_error"] = 1 - points["test_accuracy"], 1 - points["val_accuracy"]
    test_size = datasets.spec(runs["dataset"].iloc[0]).test_size
    points["answers"] = [answers.get(k) for k in points.index] if (answers := _answers(runs[estimate], test_size)) \
        else None
    return Comparison(points.reset_index(), test_size, split)


def _mean(codes: np.ndarray, values: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Each of k groups' mean of values over the given rows, skipping NaN (NaN where none)."""
    rows = rows & ~np.isnan(values)
    count = np.bincount(codes[rows], minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.bincount(codes[rows], weights=values[rows], minlength=k) / count, np.nan)


def _var(codes: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Each of k groups' sample variance (ddof 1), skipping NaN (NaN under two values)."""
    rows = ~np.isnan(values)
    count = np.bincount(codes[rows], minlength=k)
    mean = _mean(codes, values, rows, k)
    squares = np.bincount(codes[rows], weights=(values[rows] - mean[codes[rows]]) ** 2, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 1, squares / (count - 1), np.nan)


def _answers(runs: pd.DataFrame, test_size: int) -> dict:
    """Each point's per-image answers (the share of its runs right on each test image), where
    every run of the point recorded them."""
    if "test_correct" not in runs:
        return {}
    whole = runs["test_correct"].notna().groupby(runs["key"], sort=False).transform("all")
    if not whole.any():
        return {}
    runs = runs[whole]
    codes, keys = pd.factorize(runs["key"])
    right = results.unpack_bits(runs["test_correct"], test_size)  # (runs, images), decoded together
    member = (codes == np.arange(len(keys))[:, None]).astype(float)  # (points, runs)
    return dict(zip(keys, member @ right / member.sum(1, keepdims=True)))


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
