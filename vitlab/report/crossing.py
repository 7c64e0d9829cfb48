"""Where two fitted scaling laws cross: the data size (Fig. 3) or training compute (Fig. 5) at
which one family's error falls below another's, with an interval from both fits' refits (the
paper's central crossover)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vitlab.report.scaling import LEVEL, PowerLawFit
from vitlab.report.points import compare
from vitlab.report.studies import compute_group, ok_runs, one_factor_study

FAMILIES = ("vit", "resnet", "hybrid")
# How a value of each axis a crossover is searched along is written.
AXES = {"train_size": "{:,.0f} images", "train_flops": "{:.3g} FLOPs"}


@dataclass
class Crossover:
    """Where the first law's error falls below the second's, searched over [lo, hi]. Estimates
    and interval ends are x values, or -inf (the first is already below at lo) or inf (it is
    still above at hi)."""
    x: float  # where the point fits cross
    interval: tuple[float, float]  # at LEVEL, over paired refits of both laws (noise, form, misfit)
    lo: float
    hi: float
    reach: float  # the largest x both laws' back-tests scored: beyond it the laws' form is untested
    axis: str = "train_size"  # what x is (a key of AXES)

    def inside(self) -> bool:
        """Whether the point fits cross within the values run (the search runs to 10x beyond them)."""
        return self.lo < self.x <= self.hi / 10

    def text(self, other: str = "the other's") -> str:
        """In words, after the first law's name: where its error falls below other's, its
        interval, and whether the back-tests reach that far."""
        value = AXES[self.axis].format

        def at(v: float) -> str:
            return f"below {value(self.lo)}" if v == -np.inf else f"beyond {value(self.hi)}" if v == np.inf else value(v)
        if self.x == np.inf:
            where = f"stays above {other} up to {value(self.hi)}"
        elif self.x == -np.inf:
            where = f"is below {other} already at {value(self.lo)}"
        else:
            where = f"falls below {other} at {at(self.x)}"
            where += " (beyond what the back-tests scored)" if self.x > self.reach else ""
        low, high = self.interval
        return f"{where} ({LEVEL:.0%} interval {at(low)} to {at(high)})"


def crossover(first: PowerLawFit, second: PowerLawFit, lo: float, hi: float, axis: str = "train_size",
              seed: int = 0, points: int = 400) -> Crossover:
    """Where first's error falls below second's, from fits of two independent sets of runs.

    Each pair of refits (one of each law's, drawn independently, so pairing them is a joint
    bootstrap of both fits) gives one crossing: the smallest x on a log grid over [lo, hi] where
    first's error is below second's after being above it (-inf where it is below at lo, inf where
    it never gets below). Beyond each law's data its refit bends by a draw of its back-tested
    misfit per unit of log extrapolation, as its band does. The interval is the percentile
    interval of the crossings, infinite ends included.
    """
    grid = np.geomspace(lo, hi, points)
    rng = np.random.default_rng(seed)
    n = min(len(first.boot), len(second.boot))

    def curves(fit: PowerLawFit) -> np.ndarray:
        law = fit.refits(grid)[rng.permutation(len(fit.boot))[:n]]
        misfit = fit.backtest.misfit if fit.backtest is not None else 0.0
        bend = rng.normal(0, misfit, (n, 1)) * np.log(np.maximum(grid / fit.x_max, 1.0))
        return np.maximum(law, 1e-12) * np.exp(bend)

    refits = _first_below(curves(first), curves(second), grid)
    tail = (1 - LEVEL) / 2
    # np.quantile's "inverted_cdf" picks values the crossings take, so infinite ends stay infinite.
    low, high = np.quantile(refits, [tail, 1 - tail], method="inverted_cdf")
    point = _first_below(first.predict(grid)[None], second.predict(grid)[None], grid)[0]
    reach = min(f.x_max * (f.backtest.ratio if f.backtest is not None else 1.0) for f in (first, second))
    return Crossover(float(point), (float(low), float(high)), lo, hi, reach, axis)


def _first_below(a: np.ndarray, b: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Per row: the first grid x where a < b, -inf where a < b at the first x, inf where never."""
    below = a < b
    first = np.where(below.any(1), below.argmax(1), -1)
    return np.where(first < 0, np.inf, np.where(first == 0, -np.inf, grid[np.maximum(first, 0)]))


def compute_ladder(points: pd.DataFrame) -> pd.DataFrame:
    """The study points a family's law of error against compute is fitted to: at each distinct
    training compute, the point best on validation, sorted by compute. Unlike the Pareto frontier
    it keeps a point that a cheaper one beats on validation: with a few seeds noise does that
    often, and a law needs four compute values."""
    points = points[points["val_error"].notna()] if len(points) else points
    return points.sort_values("val_error", kind="stable").drop_duplicates("train_flops").sort_values("train_flops")


def laws(df: pd.DataFrame, axis: str = "train_size") -> dict[str, tuple[PowerLawFit | None, pd.DataFrame]]:
    """Each family's fitted law of test error against axis, with the study points it was fitted
    to. Against training images: the family's data-size study. Against training compute: in the
    runs compared at equal compute (studies.compute_group), the family's best configuration at
    each compute value (compute_ladder), chosen on validation with half of each point's
    seeds and measured on the rest, so that the family with more candidates at a compute does not
    win by picking lucky seeds."""
    if axis == "train_flops":
        comparison = compare(compute_group(df, FAMILIES), split=True)
        ladders = {m: compute_ladder(comparison.points[comparison.points["model"] == m]) for m in FAMILIES}
        return {m: (comparison.scaling_law(ladder, axis), ladder) for m, ladder in ladders.items()}
    out = {}
    for model in dict.fromkeys([*FAMILIES, *sorted(ok_runs(df)["model"].unique())]):  # a family added later too
        runs = one_factor_study(df, axis, model)
        comparison = compare(runs) if not runs.empty else None
        out[model] = (comparison.scaling_law(comparison.points, axis) if comparison else None,
                      comparison.points if comparison else runs)
    return out


def crossings(df: pd.DataFrame, axis: str = "train_size") -> list[tuple[str, str, Crossover]]:
    """Where the ViT's fitted law of test error against axis (training images or training
    compute, see laws) crosses the ResNet's and the hybrid's (between)."""
    return between(laws(df, axis), axis)


def between(fitted: dict[str, tuple[PowerLawFit | None, pd.DataFrame]], axis: str = "train_size"
            ) -> list[tuple[str, str, Crossover]]:
    """Where the ViT's law among fitted (laws' answer) crosses the ResNet's and the hybrid's,
    searched from the smallest value run to 10x the largest, on one dataset only: (first, second,
    where first's error falls below second's), each way round that crosses, or the ViT's way when
    neither does."""
    (vit, vit_points), out = fitted["vit"], []
    for other in ("resnet", "hybrid"):
        law, points = fitted[other]
        if vit is None or law is None or set(vit_points["dataset"]) != set(points["dataset"]):
            continue
        values = pd.concat([vit_points, points])[axis]
        lo, hi = float(values.min()), 10.0 * values.max()
        overtakes, overtaken = crossover(vit, law, lo, hi, axis), crossover(law, vit, lo, hi, axis)
        if np.isfinite(overtakes.x) or not np.isfinite(overtaken.x):
            out.append(("vit", other, overtakes))
        if np.isfinite(overtaken.x):
            out.append((other, "vit", overtaken))
    return out
