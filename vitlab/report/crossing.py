"""Where two fitted scaling laws cross: the data size at which one family's error falls below
another's, with an interval from both fits' refits (the paper's central crossover, Fig. 3)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vitlab.report.scaling import LEVEL, PowerLawFit
from vitlab.report.studies import compare, one_factor_study


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

    def text(self, unit: str = "", other: str = "the other's") -> str:
        """In words, after the first law's name: where its error falls below other's, its
        interval, and whether the back-tests reach that far."""
        def at(v: float) -> str:
            return (f"below {self.lo:,.0f}{unit}" if v == -np.inf else f"beyond {self.hi:,.0f}{unit}" if v == np.inf
                    else f"{v:,.0f}{unit}")
        if self.x == np.inf:
            where = f"stays above {other} up to {self.hi:,.0f}{unit}"
        elif self.x == -np.inf:
            where = f"is below {other} already at {self.lo:,.0f}{unit}"
        else:
            where = f"falls below {other} at {at(self.x)}"
            where += " (beyond what the back-tests scored)" if self.x > self.reach else ""
        low, high = self.interval
        return f"{where} ({LEVEL:.0%} interval {at(low)} to {at(high)})"


def crossover(first: PowerLawFit, second: PowerLawFit, lo: float, hi: float, seed: int = 0,
              points: int = 400) -> Crossover:
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
    return Crossover(float(point), (float(low), float(high)), lo, hi, reach)


def _first_below(a: np.ndarray, b: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Per row: the first grid x where a < b, -inf where a < b at the first x, inf where never."""
    below = a < b
    first = np.where(below.any(1), below.argmax(1), -1)
    return np.where(first < 0, np.inf, np.where(first == 0, -np.inf, grid[np.maximum(first, 0)]))


def crossings(df: pd.DataFrame) -> list[tuple[str, str, Crossover]]:
    """Where the ViT's fitted law of test error against training images crosses the ResNet's and
    the hybrid's, searched from the smallest size run to 10x the largest, on one dataset only:
    (first, second, where first's error falls below second's), each way round that crosses, or
    the ViT's way when neither does."""
    fits, runs = {}, {}
    for model in ("vit", "resnet", "hybrid"):
        runs[model] = one_factor_study(df, "train_size", model)
        comparison = compare(runs[model]) if not runs[model].empty else None
        fits[model] = comparison.scaling_law(comparison.points, "train_size") if comparison else None
    out = []
    for other in ("resnet", "hybrid"):
        if fits["vit"] is None or fits[other] is None or set(runs["vit"]["dataset"]) != set(runs[other]["dataset"]):
            continue
        sizes = pd.concat([runs["vit"], runs[other]])["train_size"]
        lo, hi = float(sizes.min()), 10.0 * sizes.max()
        overtakes = crossover(fits["vit"], fits[other], lo, hi)
        overtaken = crossover(fits[other], fits["vit"], lo, hi)
        if np.isfinite(overtakes.x) or not np.isfinite(overtaken.x):
            out.append(("vit", other, overtakes))
        if np.isfinite(overtaken.x):
            out.append((other, "vit", overtaken))
    return out
