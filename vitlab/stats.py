"""Intervals that count every source of noise a run's accuracy has: its seed and the test set.

A run's accuracy varies from seed to seed (initialisation, shuffle, crops) and, as an estimate
of the model's true accuracy, by which test images happened to be drawn. Every comparison the
report makes is a weighted sum of configurations' mean accuracies (a difference of two, a
difference of gains, a frontier gap, a slope), so one method serves them all:

- seed-to-seed variance s^2 is pooled over the study's repeated configurations, with
  sum(n_i - 1) degrees of freedom, since each configuration alone has too few seeds;
- a configuration's mean accuracy p over n seeds has variance s^2 / n + p (1 - p) / N on a
  test set of N images (the test set is shared by every seed, so averaging seeds does not
  shrink its sampling error);
- the interval is t-based on the pooled degrees of freedom (scipy.stats.t).

With no repeated configuration there is no estimate of seed variance, and the comparison
is not made: binomial error alone would decide from noise the seeds would show.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

LEVEL = 0.95
MAX_SEEDS = 20  # the most seeds per configuration a "how many would decide it" answer considers


@dataclass(frozen=True)
class SeedNoise:
    """Seed-to-seed variance of one run's accuracy, pooled over repeated configurations."""
    var: float
    df: int  # sum over configurations of (seeds - 1); 0: no configuration was repeated
    configs: int  # repeated configurations pooled

    @property
    def sd(self) -> float:
        return float(np.sqrt(self.var)) if self.df else float("nan")


def seed_noise(values: pd.Series, groups: pd.Series) -> SeedNoise:
    """Pooled within-configuration variance of values (one per run), runs grouped by configuration."""
    frame = pd.DataFrame({"v": np.asarray(values, dtype=float), "g": np.asarray(groups)}).dropna()
    by = frame.groupby("g")["v"]
    n = by.transform("size")
    dev = ((frame["v"] - by.transform("mean")) ** 2)[n > 1].sum()
    df = int((by.size() - 1).clip(lower=0).sum())
    return SeedNoise(float(dev / df) if df else float("nan"), df, int((by.size() > 1).sum()))


@dataclass(frozen=True)
class Cell:
    """One configuration's runs: their mean accuracy, how many seeds, and its weight in a contrast."""
    weight: float
    mean: float
    n: int


@dataclass(frozen=True)
class Estimate:
    """A weighted sum of configuration means with its t interval at LEVEL."""
    value: float
    low: float
    high: float
    se: float
    df: int

    def decided(self) -> int:
        """+1 when the interval lies above zero, -1 below, 0 when it contains zero."""
        return 1 if self.low > 0 else -1 if self.high < 0 else 0

    def text(self, digits: int = 3) -> str:
        return (f"{self.value:+.{digits}f} (95% interval {self.low:+.{digits}f} to {self.high:+.{digits}f}, "
                f"t with {self.df} df)")


def cell_variance(cells: list[Cell], seed_var: float, test_size: int) -> float:
    return float(sum(c.weight ** 2 * (seed_var / c.n + c.mean * (1 - c.mean) / test_size) for c in cells))


def contrast(cells: list[Cell], noise: SeedNoise, test_size: int) -> Estimate | None:
    """sum(weight * mean) over cells with its interval; None without an estimate of seed noise."""
    if not noise.df:
        return None
    value = float(sum(c.weight * c.mean for c in cells))
    se = np.sqrt(cell_variance(cells, noise.var, test_size))
    half = st.t.ppf(0.5 + LEVEL / 2, noise.df) * se
    return Estimate(value, value - half, value + half, float(se), noise.df)


def seeds_needed(cells: list[Cell], configs: int, test_size: int, seed_sd: float) -> int | None:
    """The fewest seeds per configuration (2..MAX_SEEDS) whose interval would clear zero for a
    contrast of this size, if seeds varied by seed_sd; None if no such number would."""
    value = abs(sum(c.weight * c.mean for c in cells))
    for n in range(2, MAX_SEEDS + 1):
        resized = [Cell(c.weight, c.mean, n) for c in cells]
        half = st.t.ppf(0.5 + LEVEL / 2, configs * (n - 1)) * np.sqrt(cell_variance(resized, seed_sd ** 2, test_size))
        if half < value:
            return n
    return None
