"""Scaling fits: the saturating power law of "Scaling Vision Transformers" (Zhai et al. 2021),
error = a * (x + c)^(-b) + e_inf, with parametric-bootstrap intervals; Pareto frontiers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

PARAMS = ("a", "b", "c", "e_inf")
N_BOOT = 200
LEVEL = 0.95
# Four parameters need two residual degrees of freedom to say anything about the noise; with
# fewer distinct x the offset c is fixed at 0 (error = a x^-b + e_inf), and below 4 there is no fit.
MIN_FOUR_PARAMETER_X = 6
MIN_THREE_PARAMETER_X = 4


@dataclass
class PowerLawFit:
    """A fitted saturating power law; x in the units given, c too."""
    a: float
    b: float
    c: float
    e_inf: float
    intervals: dict[str, tuple[float, float]]  # parametric-bootstrap percentile intervals at LEVEL
    boot: np.ndarray  # (kept, 4) bootstrap parameter draws, in x's units
    n_points: int
    n_boot: int  # bootstrap refits tried; len(boot) of them converged and were kept
    form: str  # "a(x + c)^-b + e_inf" (four parameters) or "a x^-b + e_inf" (c fixed at 0)
    noise: str  # where the bootstrap's noise came from

    @property
    def kept(self) -> int:
        return len(self.boot)

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


def fit_saturating_power_law(x, error, noise_sd=None, noise_df: float | None = None, n_boot: int = N_BOOT,
                             seed: int = 0) -> PowerLawFit:
    """Least-squares fit of error = a (x + c)^(-b) + e_inf, with a, c >= 0, 0 < b <= 10 and
    0 <= e_inf <= min(error), and parametric-bootstrap intervals of every parameter.

    With fewer than MIN_FOUR_PARAMETER_X distinct x, c is fixed at 0 (a three-parameter law).
    The bootstrap refits the law to its own fitted curve plus Gaussian noise: noise_sd (a
    scalar or one per point, e.g. the seed and test-set error of each point's mean, estimated
    with noise_df degrees of freedom; None: known) or, without it, the residual standard error
    with n - parameters degrees of freedom. Each draw scales its noise by a draw of the noise
    estimate's own uncertainty (scaled inverse chi-square), so that bands from few points or
    few seeds are as wide as those points allow. A resampling-of-points bootstrap would not do:
    with five points most resamples have too few distinct x to refit, and the rest interpolate.

    x is rescaled by its smallest value for the optimiser, so compute in FLOPs and sizes
    in images fit alike.
    """
    x, error = np.asarray(x, dtype=float), np.asarray(error, dtype=float)
    if x.shape != error.shape or x.ndim != 1:
        raise ValueError(f"x and error: need two 1-D arrays of one length, got {x.shape} and {error.shape}")
    distinct = len(np.unique(x))
    if distinct < MIN_THREE_PARAMETER_X:
        raise ValueError(f"x: a saturating power law needs at least {MIN_THREE_PARAMETER_X} distinct x values, "
                         f"got {distinct}")
    if (x <= 0).any():
        raise ValueError("x: must be positive (compute, parameters or training images)")
    free_c = distinct >= MIN_FOUR_PARAMETER_X
    scale = x.min()
    best = _fit(x / scale, error, None, free_c)
    if best is None:
        raise ValueError("the saturating power law did not converge on these points")
    fitted = _law(x / scale, *best)
    if noise_sd is None:
        df = len(x) - (4 if free_c else 3)
        sd = np.full(len(x), np.sqrt(((error - fitted) ** 2).sum() / df)) if df > 0 else np.full(len(x), np.nan)
        noise = f"residual standard error ({df} df)"
    else:
        sd, df = np.broadcast_to(np.asarray(noise_sd, dtype=float), x.shape), noise_df
        noise = "given noise" + (f" ({df:g} df)" if df else "")
    rng = np.random.default_rng(seed)
    draws = []
    if np.isfinite(sd).all():
        for _ in range(n_boot):
            inflate = np.sqrt(df / rng.chisquare(df)) if df else 1.0
            p = _fit(x / scale, fitted + rng.normal(0, 1, len(x)) * sd * inflate, best, free_c)
            if p is not None:
                draws.append(p)
    boot = _unscale(np.array(draws).reshape(-1, 4), scale)
    tail = (1 - LEVEL) / 2 * 100
    intervals = {name: (float(np.percentile(boot[:, i], tail)), float(np.percentile(boot[:, i], 100 - tail)))
                 for i, name in enumerate(PARAMS)} if len(boot) else {name: (np.nan, np.nan) for name in PARAMS}
    a, b, c, e_inf = _unscale(best[None], scale)[0]
    return PowerLawFit(float(a), float(b), float(c), float(e_inf), intervals, boot, len(x), n_boot,
                       "a(x + c)^-b + e_inf" if free_c else "a x^-b + e_inf", noise)


def _unscale(params: np.ndarray, scale: float) -> np.ndarray:
    """From x/scale units back to x's: a (x/s + c')^-b = a s^b (x + c' s)^-b."""
    out = params.copy()
    out[:, 0] = params[:, 0] * scale ** params[:, 1]
    out[:, 2] = params[:, 2] * scale
    return out


def _fit(x: np.ndarray, error: np.ndarray, start, free_c: bool = True) -> np.ndarray | None:
    """Best (a, b, c, e_inf) for x in rescaled units (c = 0 unless free_c).

    For fixed b and c the law is linear in a and e_inf, so those are solved exactly
    (with their bounds) and only b and c are searched: on a grid, then refined with
    L-BFGS-B. This variable projection is far faster and steadier than a four-parameter
    curve_fit, which matters with hundreds of bootstrap refits per report figure.
    """
    floor = max(error.min(), 0.0)
    if start is None:
        c_values = np.concatenate([[0], np.logspace(-3, 3, 25)]) if free_c else np.zeros(1)
        b_grid, c_grid = np.meshgrid(np.logspace(-2, 1, 31), c_values)
        sse, _, _ = _profile(x, error, floor, b_grid.ravel(), c_grid.ravel())
        k = int(np.nanargmin(sse))
        b0, c0 = b_grid.ravel()[k], c_grid.ravel()[k]
    else:
        b0, c0 = start[1], start[2]

    def objective(theta):
        return _profile(x, error, floor, np.array([theta[0]]), np.array([np.expm1(theta[1])]))[0][0]

    res = minimize(objective, [b0, np.log1p(c0)], method="L-BFGS-B",
                   bounds=[(1e-3, 10.0), (0.0, np.log1p(10 * x.max()) if free_c else 0.0)])
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
