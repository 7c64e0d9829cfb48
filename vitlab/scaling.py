"""Scaling fits: the saturating power law of "Scaling Vision Transformers" (Zhai et al. 2021),
error = a * (x + c)^(-b) + e_inf, with bootstrap intervals; Pareto frontiers; trends."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

PARAMS = ("a", "b", "c", "e_inf")
N_BOOT = 200
LEVEL = 0.95


@dataclass
class PowerLawFit:
    """A fitted saturating power law; x in the units given, c too."""
    a: float
    b: float
    c: float
    e_inf: float
    intervals: dict[str, tuple[float, float]]  # bootstrap percentile intervals at LEVEL
    boot: np.ndarray  # (n, 4) bootstrap parameter draws, in x's units
    n_points: int

    def predict(self, x) -> np.ndarray:
        return _law(np.asarray(x, dtype=float), self.a, self.b, self.c, self.e_inf)

    def band(self, x, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise bootstrap interval of the fitted curve at x."""
        x = np.asarray(x, dtype=float)
        curves = np.stack([_law(x, *p) for p in self.boot])
        tail = (1 - level) / 2 * 100
        return np.percentile(curves, tail, axis=0), np.percentile(curves, 100 - tail, axis=0)


def _law(x, a, b, c, e_inf):
    return a * (x + c) ** (-b) + e_inf


def fit_saturating_power_law(x, error, n_boot: int = N_BOOT, seed: int = 0) -> PowerLawFit:
    """Least-squares fit of error = a (x + c)^(-b) + e_inf, with a, c >= 0, 0 < b <= 10 and
    0 <= e_inf <= min(error), and bootstrap (resampled points) intervals of every parameter.

    x is rescaled by its smallest value for the optimiser, so compute in FLOPs and sizes
    in images fit alike.
    """
    x, error = np.asarray(x, dtype=float), np.asarray(error, dtype=float)
    if x.shape != error.shape or x.ndim != 1:
        raise ValueError(f"x and error: need two 1-D arrays of one length, got {x.shape} and {error.shape}")
    if len(np.unique(x)) < 4:
        raise ValueError(f"x: a four-parameter law needs at least 4 distinct x values, got {len(np.unique(x))}")
    if (x <= 0).any():
        raise ValueError("x: must be positive (compute, parameters or training images)")
    scale = x.min()
    best = _fit(x / scale, error, None)
    if best is None:
        raise ValueError("the saturating power law did not converge on these points")
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(x), len(x))
        if len(np.unique(x[pick])) < 4:
            continue
        p = _fit(x[pick] / scale, error[pick], best)
        if p is not None:
            draws.append(p)
    boot = _unscale(np.array(draws).reshape(-1, 4), scale)
    tail = (1 - LEVEL) / 2 * 100
    intervals = {name: (float(np.percentile(boot[:, i], tail)), float(np.percentile(boot[:, i], 100 - tail)))
                 for i, name in enumerate(PARAMS)} if len(boot) else {name: (np.nan, np.nan) for name in PARAMS}
    a, b, c, e_inf = _unscale(best[None], scale)[0]
    return PowerLawFit(float(a), float(b), float(c), float(e_inf), intervals, boot, len(x))


def _unscale(params: np.ndarray, scale: float) -> np.ndarray:
    """From x/scale units back to x's: a (x/s + c')^-b = a s^b (x + c' s)^-b."""
    out = params.copy()
    out[:, 0] = params[:, 0] * scale ** params[:, 1]
    out[:, 2] = params[:, 2] * scale
    return out


def _fit(x: np.ndarray, error: np.ndarray, start) -> np.ndarray | None:
    """Best (a, b, c, e_inf) for x in rescaled units.

    For fixed b and c the law is linear in a and e_inf, so those are solved exactly
    (with their bounds) and only b and c are searched: on a grid, then refined with
    L-BFGS-B. This variable projection is far faster and steadier than a four-parameter
    curve_fit, which matters with hundreds of bootstrap refits per report figure.
    """
    floor = max(error.min(), 0.0)
    if start is None:
        b_grid, c_grid = np.meshgrid(np.logspace(-2, 1, 31), np.concatenate([[0], np.logspace(-3, 3, 25)]))
        sse, _, _ = _profile(x, error, floor, b_grid.ravel(), c_grid.ravel())
        k = int(np.nanargmin(sse))
        b0, c0 = b_grid.ravel()[k], c_grid.ravel()[k]
    else:
        b0, c0 = start[1], start[2]

    def objective(theta):
        return _profile(x, error, floor, np.array([theta[0]]), np.array([np.expm1(theta[1])]))[0][0]

    res = minimize(objective, [b0, np.log1p(c0)], method="L-BFGS-B",
                   bounds=[(1e-3, 10.0), (0.0, np.log1p(10 * x.max()))])
    b, c = res.x[0], np.expm1(res.x[1])
    sse, a, e_inf = _profile(x, error, floor, np.array([b]), np.array([c]))
    return np.array([a[0], b, c, e_inf[0]]) if np.isfinite(sse[0]) else None


def _profile(x, y, floor, b, c):
    """For each (b, c): the least-squares a >= 0 and 0 <= e_inf <= floor, and the SSE."""
    phi = (x[None, :] + c[:, None]) ** -b[:, None]
    pp, py, p1 = (phi * phi).sum(1), (phi * y).sum(1), phi.sum(1)
    n, y1 = len(y), y.sum()
    det = pp * n - p1 * p1
    with np.errstate(divide="ignore", invalid="ignore"):
        a_free = (py * n - p1 * y1) / det
        e_free = (pp * y1 - p1 * py) / det
        candidates = [(a_free, e_free)]
        for e in (np.zeros_like(pp), np.full_like(pp, floor)):
            candidates.append((np.maximum((py - e * p1) / pp, 0), e))
        candidates.append((np.zeros_like(pp), np.full_like(pp, np.clip(y1 / n, 0, floor))))
    best_sse = np.full(len(b), np.inf)
    best_a, best_e = np.zeros(len(b)), np.zeros(len(b))
    for a, e in candidates:
        ok = (a >= 0) & (e >= -1e-12) & (e <= floor + 1e-12) & np.isfinite(a) & np.isfinite(e)
        sse = (((a[:, None] * phi + e[:, None]) - y) ** 2).sum(1)
        better = ok & (sse < best_sse)
        best_sse[better], best_a[better], best_e[better] = sse[better], a[better], e[better]
    return best_sse, best_a, best_e


def pareto_frontier(x, y) -> np.ndarray:
    """Mask of the points no other point beats on both: lower or equal x and lower y."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    order = np.lexsort((y, x))
    mask = np.zeros(len(x), dtype=bool)
    best = np.inf
    for i in order:
        if y[i] < best:
            mask[i] = True
            best = y[i]
    return mask


@dataclass
class Trend:
    """Change of y per decade of x from a straight-line fit on log10 x, with a bootstrap interval."""
    slope: float
    interval: tuple[float, float]
    n_points: int


def trend_per_decade(x, y, n_boot: int = N_BOOT, seed: int = 0) -> Trend:
    x, y = np.log10(np.asarray(x, dtype=float)), np.asarray(y, dtype=float)
    if len(np.unique(x)) < 2:
        raise ValueError("x: a trend needs at least 2 distinct x values")
    slope = np.polyfit(x, y, 1)[0]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(x), len(x))
        if len(np.unique(x[pick])) >= 2:
            draws.append(np.polyfit(x[pick], y[pick], 1)[0])
    tail = (1 - LEVEL) / 2 * 100
    return Trend(float(slope), (float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))), len(x))
