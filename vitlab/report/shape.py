"""The compute-optimal shape: the per-dimension law of "Getting ViT in Shape" (Alabdulmohsin et
al. 2023, SoViT) fitted to a star sweep (a centre ViT, and each of width, depth and MLP size
shrunk alone, each at several step budgets), each dimension's compute-optimal scaling exponent,
and the value it recommends for a budget, with intervals.

For one dimension x, the others held at the centre, at training compute t (FLOPs):

    error = alpha x^-a + (beta x^b + xi) t^-c + eps,   alpha, beta, xi, eps >= 0

The first term is what too small an x costs however long it trains; the second, what a larger x
costs at a fixed compute (it sees fewer images). At a fixed t the error is lowest at
x*(t) = (a alpha t^c / (b beta))^(1 / (a + b)), so x* grows as t^s with s = c / (a + b).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from vitlab.report.points import compare
from vitlab.report.studies import CONFIG_FIELDS, ok_runs
from vitlab.run import datasets

PARAMS = ("alpha", "a", "beta", "b", "xi", "c", "eps")
N_BOOT = 200
LEVEL = 0.95
MIN_POINTS = 8  # the law has 7 parameters; fewer points leave its noise unestimated
# Search grids of the exponents (log scale), shared by every row; then finer grids per row.
_LOG_A = np.linspace(np.log(0.02), np.log(8.0), 9)
_LOG_C = np.linspace(np.log(0.02), np.log(3.0), 9)
_REFINE = np.linspace(-1, 1, 3)  # a pattern search: each round tries the 27 neighbours at its step
_ROUNDS = 10
_STARTS = 2
# Every subset of the four linear coefficients (alpha, beta, xi, eps) that may be non-zero: the
# non-negative least-squares fit is the best least-squares fit on one of them whose coefficients
# are all >= 0 (written out because 16 small solves vectorise over thousands of grid points and
# refits, where scipy's nnls solves one problem at a time).
_SUBSETS = [list(s) for k in range(1, 5) for s in combinations(range(4), k)]


def optimal_exponent(a, b, c):
    """s in x* ~ t^s: where d error / dx = 0 at fixed t."""
    return c / (a + b)


@dataclass
class ShapeLaw:
    """SoViT's law fitted to one dimension of a star sweep; parameters in rescaled units (x over
    x_ref, t over t_ref), so that predict and optimal take x and t in their own units."""
    dimension: str
    params: np.ndarray  # the point fit, PARAMS
    boot: np.ndarray  # (n_boot, 7) refits: the fitted law plus noise as the runs have it, refitted
    x_ref: float
    t_ref: float
    n_points: int
    noise: str  # where the refits' noise came from
    x_range: tuple[float, float]  # the values run

    def predict(self, x, t) -> np.ndarray:
        return _law(self.params, np.asarray(x, float) / self.x_ref, np.asarray(t, float) / self.t_ref)

    @property
    def exponent(self) -> float:
        return float(_exponents(self.params[None])[0])

    def exponent_interval(self, level: float = LEVEL) -> tuple[float, float]:
        return _percentiles(_exponents(self.boot), level)

    def optimal(self, t) -> float:
        """The value of the dimension with the lowest error at compute t (FLOPs), by the point fit:
        0 where the runs show no cost of shrinking it, inf where they show no cost of growing it."""
        return float(_optimal(self.params[None], t / self.t_ref)[0] * self.x_ref)

    def optimal_interval(self, t, level: float = LEVEL) -> tuple[float, float]:
        return tuple(v * self.x_ref for v in _percentiles(_optimal(self.boot, t / self.t_ref), level))

    def interior(self) -> float:
        """The share of refits with a trade-off (alpha and beta > 0): where it is low, the runs do
        not show where this dimension stops paying."""
        return float(((self.boot[:, 0] > 0) & (self.boot[:, 2] > 0)).mean())


def _law(p, x, t):
    alpha, a, beta, b, xi, c, eps = p
    return alpha * x ** -a + (beta * x ** b + xi) * t ** -c + eps


def _exponents(p: np.ndarray) -> np.ndarray:
    """s per row; 0 where alpha = 0 (x* stays at the smallest: shrinking costs nothing), inf where
    beta = 0 (x* grows without end: growing costs nothing)."""
    s = optimal_exponent(p[:, 1], p[:, 3], p[:, 5])
    return np.where(p[:, 2] <= 0, np.inf, np.where(p[:, 0] <= 0, 0.0, s))


def _optimal(p: np.ndarray, t: float) -> np.ndarray:
    """x*(t) = (a alpha / (b beta))^(1 / (a + b)) t^s per row, with _exponents' open ends."""
    alpha, a, beta, b, _, c, _ = p.T
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (a * alpha / (b * beta)) ** (1 / (a + b)) * t ** optimal_exponent(a, b, c)
    return np.where(beta <= 0, np.inf, np.where(alpha <= 0, 0.0, x))


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    # inverted_cdf: no interpolation towards an inf end (a refit without a trade-off).
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail], method="inverted_cdf")
    return float(low), float(high)


def fit_shape_law(x, t, error, noise_sd=None, noise_df: float | None = None, dimension: str = "x",
                  n_boot: int = N_BOOT, seed: int = 0) -> ShapeLaw:
    """Weighted least-squares fit of SoViT's law to points (x, t, error), and n_boot refits.

    noise_sd: each point's noise sd (e.g. its seed and test-set sampling error), estimated with
    noise_df degrees of freedom (None: known); without it the noise is taken as proportional to
    the error (seed noise shrinks as the error does), its scale from the weighted residuals. The
    refits fit the fitted law plus Gaussian noise of that sd, each scaled by a draw of the noise
    estimate's own uncertainty (scaled inverse chi-square), so that few points or few seeds
    widen the intervals as they should.
    """
    x, t, error = (np.asarray(v, dtype=float) for v in (x, t, error))
    if not x.shape == t.shape == error.shape or x.ndim != 1:
        raise ValueError(f"x, t and error: need three 1-D arrays of one length, got {x.shape}, {t.shape}, {error.shape}")
    if len(x) < MIN_POINTS:
        raise ValueError(f"{dimension}: the law has 7 parameters and needs at least {MIN_POINTS} points, got {len(x)}")
    if (x <= 0).any() or (t <= 0).any():
        raise ValueError(f"{dimension}: x and t must be positive")
    if not np.isfinite(error).all() or (error < 0).any():
        raise ValueError(f"{dimension}: error must be finite and non-negative")
    x_ref, t_ref = x.max(), t.min()
    xs, ts = x / x_ref, t / t_ref
    rng = np.random.default_rng(seed)
    if noise_sd is None:
        weights = 1 / np.maximum(error, 1e-3)
        best = _fit_many(xs, ts, error[None], weights)[0]
        fitted = _law(best, xs, ts)
        df = max(len(x) - int((best[[0, 2, 4, 6]] > 0).sum()) - 3, 1)  # less the non-zero coefficients and a, b, c
        relative = np.sqrt((((error - fitted) * weights) ** 2).sum() / df)
        sd = relative * np.maximum(fitted, 1e-3)
        noise = f"proportional to the error, {relative:.2g} of it, from the residuals ({df} df)"
    else:
        sd = np.broadcast_to(np.asarray(noise_sd, dtype=float), x.shape)
        weights = 1 / np.maximum(sd, 1e-6)
        best = _fit_many(xs, ts, error[None], weights)[0]
        fitted, df = _law(best, xs, ts), noise_df
        noise = "given noise" + (f" ({df:.3g} df)" if df else "")
    inflate = np.sqrt(df / rng.chisquare(df, n_boot)) if df else np.ones(n_boot)
    noisy = fitted + rng.normal(0, 1, (n_boot, len(x))) * sd * inflate[:, None]
    boot = _fit_many(xs, ts, noisy, weights)
    return ShapeLaw(dimension, best, boot, float(x_ref), float(t_ref), len(x), noise, (float(x.min()), float(x.max())))


def _fit_many(x: np.ndarray, t: np.ndarray, Y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The best (alpha, a, beta, b, xi, c, eps) for each row of Y, weighted by w.

    For fixed exponents the law is linear in alpha, beta, xi and eps, which are solved exactly
    (non-negative); only a, b and c are searched: on a grid shared by every row, then by a pattern
    search from each row's _STARTS best grid points (the law has several basins: a and b trade
    against each other and against the offsets), keeping the best.
    """
    la, lb, lc = (g.ravel() for g in np.meshgrid(_LOG_A, _LOG_A, _LOG_C, indexing="ij"))
    sse, _ = _solve(_design(x, t, la, lb, lc)[None], Y, w)  # (rows, grid)
    starts = np.argsort(sse, 1)[:, :_STARTS]  # (rows, starts)
    rows, n_starts = len(Y), starts.shape[1]
    best = np.stack([la[starts], lb[starts], lc[starts]], -1).reshape(rows * n_starts, 3)
    Yk = np.repeat(Y, n_starts, axis=0)
    every = np.arange(len(Yk))
    step = np.tile([_LOG_A[1] - _LOG_A[0], _LOG_A[1] - _LOG_A[0], _LOG_C[1] - _LOG_C[0]], (len(Yk), 1)) / 2
    low, high = np.array([_LOG_A[0], _LOG_A[0], _LOG_C[0]]), np.array([_LOG_A[-1], _LOG_A[-1], _LOG_C[-1]])
    offsets = np.stack([g.ravel() for g in np.meshgrid(_REFINE, _REFINE, _REFINE, indexing="ij")], 1)
    centre = len(offsets) // 2  # the offset (0, 0, 0): where a round finds nothing better
    for _ in range(_ROUNDS):
        cand = np.clip(best[:, None, :] + offsets[None] * step[:, None, :], low, high)  # (rows x starts, 27, 3)
        sse, coefs = _solve(_design(x, t, cand[..., 0], cand[..., 1], cand[..., 2]), Yk, w)
        k = sse.argmin(1)
        best, coef, found = cand[every, k], coefs[every, k], sse[every, k]
        step = np.where((k == centre)[:, None], step / 2, step)  # a step that found nothing better halves
    pick = found.reshape(rows, n_starts).argmin(1) + np.arange(rows) * n_starts
    a, b, c = np.exp(best[pick]).T
    coef = coef[pick]
    return np.stack([coef[:, 0], a, coef[:, 1], b, coef[:, 2], c, coef[:, 3]], 1)


def _design(x, t, la, lb, lc) -> np.ndarray:
    """The law's four columns (x^-a, x^b t^-c, t^-c, 1) at every point, for exponent arrays of
    any shape: (..., n, 4)."""
    a, b, c = (np.exp(v)[..., None] for v in (la, lb, lc))
    tc = t ** -c
    return np.stack([x ** -a, x ** b * tc, np.broadcast_to(tc, np.broadcast_shapes(tc.shape, a.shape)),
                     np.ones(np.broadcast_shapes(tc.shape, a.shape))], -1)


def _solve(design: np.ndarray, Y: np.ndarray, w: np.ndarray):
    """Non-negative weighted least squares of each row of Y on each design (rows or 1, grid, n, 4):
    the SSE (rows, grid) and the coefficients (rows, grid, 4)."""
    X = design * w[:, None]
    Yw = Y * w
    XT = np.swapaxes(X, -1, -2)
    gram = XT @ X
    if len(X) == 1:  # one design for every row: one matrix product
        rhs = (XT[0] @ Yw.T).transpose(2, 0, 1)
    else:
        rhs = (XT @ Yw[:, None, :, None])[..., 0]
    yy = (Yw * Yw).sum(1)[:, None]
    best_sse = np.full(rhs.shape[:2], np.inf)
    best_coef = np.zeros(rhs.shape)
    for s in _SUBSETS:
        g = gram[..., s, :][..., :, s]
        r = rhs[..., s]
        if len(s) == 1:  # the one- and two-coefficient systems solved in closed form: cheaper than inv
            sol = r / np.maximum(g[..., 0], 1e-300)
        elif len(s) == 2:
            det = g[..., 0, 0] * g[..., 1, 1] - g[..., 0, 1] ** 2
            det = np.where(np.abs(det) > 1e-12 * (g[..., 0, 0] * g[..., 1, 1]), det, np.inf)
            sol = np.stack([g[..., 1, 1] * r[..., 0] - g[..., 0, 1] * r[..., 1],
                            g[..., 0, 0] * r[..., 1] - g[..., 0, 1] * r[..., 0]], -1) / det[..., None]
        else:
            g = g + 1e-10 * np.trace(g, axis1=-2, axis2=-1)[..., None, None] * np.eye(len(s))
            sol = np.einsum("...ij,...j->...i", np.linalg.inv(g), r)
        sse = yy - (sol * r).sum(-1)
        better = (sol >= 0).all(-1) & (sse < best_sse)
        best_sse = np.where(better, sse, best_sse)
        full = np.zeros(rhs.shape)
        full[..., s] = sol
        best_coef = np.where(better[..., None], full, best_coef)
    return best_sse, best_coef


# The dimensions a star sweep shrinks, as the report names them, and their config fields.
DIMENSIONS = {"width": "width", "depth": "depth", "MLP size": "mlp_dim"}
MIN_VALUES = 3  # values of a dimension (the centre's included) an arm needs
MIN_BUDGETS = 2  # step budgets the centre needs: the law's compute term is fitted across them
BUDGET_FACTOR = 10  # the default budget: this many times the star's largest run


@dataclass
class Star:
    """A star sweep found among the runs: its centre, each dimension's arm (study points: seed
    means of one shape at one budget) and the law fitted to it, or why none was."""
    centre: dict  # depth, width, heads, mlp_dim of the centre
    arms: dict[str, pd.DataFrame]
    laws: dict[str, ShapeLaw | str]
    largest_flops: float  # the training compute of the star's largest run

    def recommend(self, budget: float | None = None) -> dict[str, tuple[float, float, float]]:
        """Each fitted dimension's compute-optimal value at budget FLOPs (default BUDGET_FACTOR
        times the largest run): (value, low, high), the interval at LEVEL."""
        budget = budget or BUDGET_FACTOR * self.largest_flops
        return {name: (law.optimal(budget), *law.optimal_interval(budget))
                for name, law in self.laws.items() if isinstance(law, ShapeLaw)}


def star(df: pd.DataFrame, model: str = "vit", n_boot: int = N_BOOT) -> Star | None:
    """The star sweep among successful runs of one family, with its laws; None without one.

    Runs equal in every field but the shape (depth, width, heads, MLP size), the step budget and
    the seed form candidate stars; a centre is a shape run at MIN_BUDGETS or more budgets, and
    its arm along a dimension the runs equal to it in the other two. The star with the most arms,
    then points, is taken. Each point's noise is its seeds' relative spread, pooled over every
    point with more than one seed (seed sd shrinks as error does), plus the test set's sampling
    error; with no repeated seeds, the law's residuals give it.
    """
    runs = ok_runs(df)
    runs = runs[(runs["model"] == model) & runs["steps"].notna()] if not runs.empty else runs
    shape = ["depth", "width", "mlp_dim"]
    keys = [f for f in CONFIG_FIELDS if f not in (*shape, "heads", "steps", "seed")]
    best = None
    for _, group in (runs.groupby(keys, dropna=False, sort=False) if not runs.empty else []):
        budgets = group.groupby(shape)["steps"].nunique()
        for centre in budgets[budgets >= MIN_BUDGETS].index:
            arms = {}
            for name, field in DIMENSIONS.items():
                others = [(f, v) for f, v in zip(shape, centre) if f != field]
                arm = group[np.logical_and.reduce([group[f] == v for f, v in others])]
                if arm[field].nunique() >= MIN_VALUES:
                    arms[name] = arm
            score = (len(arms), sum(len(a) for a in arms.values()))
            if arms and (best is None or score > best[0]):
                best = (score, {f: int(v) for f, v in zip(shape, centre)}, arms, group)
    if best is None:
        return None
    _, centre, arms, group = best
    points = {name: compare(arm).points for name, arm in arms.items()}
    test_size = datasets.spec(group["dataset"].iloc[0]).test_size
    relative, df_ = _pooled_relative_sd(pd.concat(points.values()))
    laws = {name: f"fewer than {MIN_VALUES} values of it with the other two at the centre's"
            for name in DIMENSIONS if name not in points}
    for name, p in points.items():
        field = DIMENSIONS[name]
        if len(p) < MIN_POINTS or p["steps"].nunique() < MIN_BUDGETS:
            laws[name] = (f"{len(p)} points at {p['steps'].nunique()} budgets; the law needs {MIN_POINTS} points "
                          f"at {MIN_BUDGETS} or more budgets")
            continue
        error = p["test_error"].to_numpy()
        sd = None if relative is None else np.sqrt(
            (relative * error) ** 2 / p["n"].to_numpy() + error * (1 - error) / test_size)
        laws[name] = fit_shape_law(p[field], p["train_flops"], error, sd, df_, name, n_boot)
    centre["heads"] = int(group.loc[(group[shape] == pd.Series(centre)).all(axis=1), "heads"].iloc[0])
    return Star(centre, points, {name: laws[name] for name in DIMENSIONS}, float(group["train_flops"].max()))


def _pooled_relative_sd(points: pd.DataFrame) -> tuple[float | None, float | None]:
    """Seed sd over error, pooled over the points with more than one seed, and its df."""
    rep = points.drop_duplicates("key")
    rep = rep[rep["var_df"] >= 1]
    if rep.empty:
        return None, None
    dof = rep["var_df"].to_numpy()
    ratio = rep["var"].to_numpy() / np.maximum(rep["test_error"].to_numpy(), 1e-3) ** 2
    return float(np.sqrt((ratio * dof).sum() / dof.sum())), float(dof.sum())
