"""Intervals and decisions that count every source of noise a run's accuracy has, where it lives.

A run's accuracy varies from seed to seed (initialisation, shuffle, crops) and, as an estimate
of the model's true accuracy, by which test images happened to be drawn. Every comparison the
report makes is a weighted sum of study points' mean accuracies (a difference, a difference of
gains, a frontier gap, a slope), so one method serves them all:

- seed-to-seed variance is estimated at each point from its own seeds (s_i^2 with n_i - 1
  degrees of freedom), never pooled: it shrinks severalfold as training data grows, so a pooled
  value is too narrow where data is small and too wide where it is large. A point run with one
  seed has no estimate, and a contrast that needs it is not made;
- a point's mean accuracy over n seeds has variance s^2 / n plus the test set's sampling
  variance: the test set is fixed, so its sampling error is shared by every seed and is not in
  the seed variance. Runs scored on the same test images are paired image by image
  (`test_set_term`), so a difference counts only the images on which the models differ;
- the interval is t-based with Welch-Satterthwaite degrees of freedom (scipy.stats.t), at most
  the points' total.

A report makes many decisions; `holm` controls the chance of any false one at 1 - LEVEL.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as st

LEVEL = 0.95  # the report's: the chance that it makes no false decision at all
POWER = 0.8  # what "seeds needed" sizes for
MAX_SEEDS = 20  # the most seeds per configuration a "how many would decide it" answer considers
# Where no point has its own seed variance, "seeds needed" assumes seed sd between these
# multiples of the test set's sampling sd (this project's own runs showed about 3x).
ASSUMED_SEED_SD = (1.0, 3.0)


@dataclass(frozen=True)
class Cell:
    """One study point in a contrast: its weight, mean test accuracy over n seeds, and the
    seed-to-seed variance of one run's accuracy there with its degrees of freedom (0: unknown)."""
    weight: float
    mean: float
    n: int
    var: float = float("nan")
    df: int = 0
    answers: np.ndarray | None = None  # per test image: the share of the point's seeds that got it right


def seed_term(c: Cell) -> float:
    return c.weight ** 2 * c.var / c.n


def test_set_term(cells: list[Cell], test_size: int) -> float:
    """The test set's sampling variance of sum(weight * mean). Where every point has per-image
    answers, paired: the variance over test images of the weighted answers, over N, so that
    images every model gets right (or wrong) cancel in a difference; it also holds each image's
    seed-to-seed flips, which the seed term has too, so it errs wide, never narrow. Without
    answers (records before vitlab kept them), the sum of p (1 - p) / N as if points were scored
    on independent test sets: an upper bound for a difference."""
    if all(c.answers is not None for c in cells):
        weighted = sum(c.weight * c.answers for c in cells)
        return float(weighted.var() / len(weighted))
    return float(sum(c.weight ** 2 * c.mean * (1 - c.mean) / test_size for c in cells))


def t_dist(df: float):
    """The distribution of a contrast's estimate over its standard error."""
    return st.t(df)


@dataclass(frozen=True)
class Estimate:
    """A weighted sum of point means, its standard error and Welch-Satterthwaite df."""
    value: float
    se: float
    df: float

    @property
    def p(self) -> float:
        """Two-sided p-value of zero."""
        return float(2 * t_dist(self.df).sf(abs(self.value) / self.se)) if self.se > 0 else float(self.value == 0)

    def interval(self, level: float = LEVEL) -> tuple[float, float]:
        half = t_dist(self.df).ppf(0.5 + level / 2) * self.se
        return self.value - half, self.value + half

    def text(self, level: float = LEVEL, digits: int = 3) -> str:
        low, high = self.interval(level)
        return (f"{self.value:+.{digits}f} ({_percent(level)} interval {low:+.{digits}f} to {high:+.{digits}f}, "
                f"t with {self.df:.1f} df)")


def _percent(level: float) -> str:
    return f"{100 * level:.{0 if round(100 * level, 6).is_integer() else 1}f}%"


def contrast(cells: list[Cell], test_size: int) -> Estimate | None:
    """sum(weight * mean) over cells with its standard error; None when a cell has no estimate
    of its own seed variance (a single seed): borrowing another point's would be too narrow
    wherever seeds vary more there."""
    cells = [c for c in cells if c.weight]
    if not cells or any(c.df < 1 for c in cells):
        return None
    seed = np.array([seed_term(c) for c in cells])
    total = seed.sum() + test_set_term(cells, test_size)
    dof = np.array([c.df for c in cells], dtype=float)
    # Welch-Satterthwaite, each seed term with its point's df, capped at their total: the
    # test-set terms are known, and uncapped a pair of seeds that happen to agree would make the
    # seed terms look negligible and the quantile normal, while its true spread is far larger.
    denominator = (seed ** 2 / dof).sum()
    df = min(total ** 2 / denominator, dof.sum()) if denominator > 0 else float(dof.sum())
    return Estimate(float(sum(c.weight * c.mean for c in cells)), float(np.sqrt(total)), float(df))


@dataclass(frozen=True)
class Decision:
    """One hypothesis's outcome under Holm: +1 or -1 when decided (by the estimate's sign), 0 not;
    and the level of the interval that matches it."""
    decided: int
    level: float


def holm(estimates: list[Estimate | None], level: float = LEVEL) -> list[Decision]:
    """Holm's step-down correction over every estimate given (None: not testable, not counted):
    the chance of any false decision among them is at most 1 - level. Each decided estimate's
    interval at its step's level excludes zero, and every undecided one's at the level where the
    procedure stopped includes it, so the intervals shown always match the decisions."""
    alpha = 1 - level
    tested = sorted((i for i, e in enumerate(estimates) if e is not None), key=lambda i: estimates[i].p)
    m = len(tested)
    out = [Decision(0, level)] * len(estimates)
    stopped = None
    for step, i in enumerate(tested):
        threshold = alpha / (m - step)
        if stopped is None and estimates[i].p <= threshold:
            out[i] = Decision(1 if estimates[i].value > 0 else -1, 1 - threshold)
        else:
            stopped = threshold if stopped is None else stopped
            out[i] = Decision(0, 1 - stopped)
    return out


def power(cells: list[Cell], test_size: int, alpha: float) -> float:
    """The chance that a two-sided t test at alpha decides a contrast whose true value is the
    cells' weighted mean, with the cells' seed variances taken as true."""
    est = contrast(cells, test_size)
    if est is None or est.se == 0:
        return float("nan")
    crit = t_dist(est.df).ppf(1 - alpha / 2)
    shift = abs(est.value) / est.se
    # The far tail as the sf of the mirrored shift: scipy's nct.cdf(-crit, df, shift) is NaN for
    # shifts past about 8.7, which read as "no power" where the power is 1.
    return float(st.nct.sf(crit, est.df, shift) + st.nct.sf(crit, est.df, -shift))


def seeds_needed(cells_at, test_size: int, alpha: float) -> int | None:
    """The fewest seeds per configuration (2..MAX_SEEDS) whose test at alpha would decide this
    contrast with POWER; cells_at(n) gives the cells as they would be with n seeds each. None if
    no such number would. Power only grows with the seeds (the seed terms shrink as 1/n and the
    degrees of freedom grow), so the fewest is found by bisection: 5 power evaluations, not 19."""
    def enough(n: int) -> bool:
        return power(cells_at(n), test_size, alpha) >= POWER

    if not enough(MAX_SEEDS):
        return None
    short, enough_at = 1, MAX_SEEDS  # too few at `short` (1 seed has no variance), enough at `enough_at`
    while enough_at - short > 1:
        mid = (short + enough_at) // 2
        short, enough_at = (short, mid) if enough(mid) else (mid, enough_at)
    return enough_at
