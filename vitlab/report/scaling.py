"""Scaling fits: the saturating power law of "Scaling Vision Transformers" (Zhai et al. 2021),
error = a (x + c)^(-b) + e_inf, with a band over its noise, its form and its back-tested misfit;
Pareto frontiers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

PARAMS = ("a", "b", "c", "e_inf")
N_BOOT = 200
BACKTEST_BOOT = 40  # refits per form in each back-test: enough for a variance, not for percentiles
LEVEL = 0.95
MIN_X = 4  # distinct x values a law is fitted to (a fit needs residual freedom; a back-test's refit too)
# Back-tests hold out the largest of these shares of the distinct x values (at least one, at most
# all but MIN_X): several cuts, so that the misfit is learned at several extrapolation ratios.
BACKTEST_SHARES = (1 / 8, 1 / 4, 3 / 8, 1 / 2)
# The two forms the band averages over: the offset c is free, or 0. They are nested, so where c
# really is 0 the free form's refits gather around it, and averaging costs only width.
FORMS = {"a(x + c)^-b + e_inf": True, "a x^-b + e_inf": False}
_LOG_B = np.linspace(np.log(1e-2), np.log(10.0), 25)  # search grid of the exponent b
_C_STEPS = 16  # search grid of log(1 + c), from 0 to log(1 + 10 max x) in units of the smallest x


@dataclass
class BackTest:
    """The law refitted without its largest x values and scored on them, in log units (the
    scaling-law literature's extrapolation error, e.g. Alabdulmohsin et al. 2022)."""
    cuts: int  # refits made, each without a different share of the largest x
    points: int  # held-out points scored, over all cuts
    ratio: float  # the largest extrapolation scored: held-out x over the largest x its refit saw
    log_rmse: float  # root mean square of log(predicted / observed) over the held-out points
    misfit: float  # sd of log error per unit of log extrapolation ratio that noise and refits do not explain


@dataclass
class PowerLawFit:
    """A fitted saturating power law; x in the units given, c too."""
    a: float
    b: float
    c: float
    e_inf: float
    intervals: dict[str, tuple[float, float]]  # percentile intervals at LEVEL over the band's refits
    boot: np.ndarray  # (n_boot, 4) refit parameters of both forms (half each), in x's units
    n_points: int
    n_boot: int  # refits, half of each form
    form: str  # the form of the point fit (a, b, c, e_inf): the one with the lower AICc
    noise: str  # where the refits' noise came from
    x_max: float  # the largest x fitted: extrapolation ratios are taken from it
    backtest: BackTest | None  # None: too few distinct x to refit without any

    def predict(self, x) -> np.ndarray:
        return _law(np.asarray(x, dtype=float), self.a, self.b, self.c, self.e_inf)

    def band(self, x, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
        """The pointwise interval of the true curve at x. Its refit part is symmetric around the
        point fit and as wide as the farther of the two percentiles of both forms' refits (noise
        and form): a curved law's refits can be biased to either side of the truth, and the
        percentile interval and the basic bootstrap's reflection of it each miss one side. The
        back-tested misfit, times the log of how far x lies beyond the data, widens it in log units.
        """
        x = np.asarray(x, dtype=float)
        centre = np.maximum(self.predict(x), 1e-12)  # a law at e_inf = 0 still has a log
        curves = self.refits(x)
        tail = (1 - level) / 2 * 100
        low, high = _refit_interval(centre, *np.percentile(curves, [tail, 100 - tail], axis=0))
        low = np.maximum(low, curves.min(0))
        misfit = 0.0
        if self.backtest is not None:
            misfit = stats.norm.ppf(0.5 + level / 2) * self.backtest.misfit * np.log(np.maximum(x / self.x_max, 1.0))
        with np.errstate(divide="ignore"):
            down, up = np.log(centre / np.maximum(low, 0)), np.log(high / centre)
        return centre * np.exp(-np.hypot(down, misfit)), centre * np.exp(np.hypot(up, misfit))

    def refits(self, x) -> np.ndarray:
        """Each refit's curve at x: one row per refit (noise and form), as the band draws them."""
        return np.stack([_law(np.asarray(x, dtype=float), *p) for p in self.boot])

    def backtest_summary(self) -> str:
        """The back-test in a few words: its log error and how far its refits extrapolated."""
        if self.backtest is None:
            return f"none ({self.n_points} points leave none to hold out)"
        return f"log-RMSE {self.backtest.log_rmse:.3f} up to {self.backtest.ratio:.2g}x"

    def supported(self, x) -> np.ndarray:
        """Whether x lies within the extrapolation the back-tests scored (x / x_max <= their ratio)."""
        ratio = self.backtest.ratio if self.backtest is not None else 1.0
        return np.asarray(x, dtype=float) <= self.x_max * ratio * (1 + 1e-9)


def _refit_interval(centre, low, high):
    """The percentile interval made symmetric around the point fit (see PowerLawFit.band)."""
    reach = np.maximum(centre - low, high - centre)
    return centre - reach, centre + reach


def band_coverage(true, x, at: float, noise_sd: float, noise_df: float | None = 10, told: bool = True,
                  sims: int = 200, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """How often the band at x = `at` covers a known law, true = (a, b, c, e_inf), when it is
    fitted to points at x with Gaussian noise of sd noise_sd, over `sims` simulations (band_trial):
    a check of a design (how many points, how far to extrapolate) before running it. Returns the
    share covered and the band's median width."""
    rng = np.random.default_rng(seed)
    hits, widths = zip(*(band_trial(true, x, at, noise_sd, noise_df, told, n_boot, rng) for _ in range(sims)))
    return float(np.mean(hits)), float(np.median(widths))


def band_trial(true, x, at: float, noise_sd: float, noise_df: float | None, told: bool, n_boot: int,
               rng: np.random.Generator) -> tuple[bool, float]:
    """One simulation of band_coverage: whether the band at `at` covers the true law, and its
    width. The fit is told the noise as an estimate with noise_df degrees of freedom (as seeds
    give it), or with told=False estimates it from the residuals."""
    x = np.asarray(x, dtype=float)
    error = _law(x, *true) + rng.normal(0, noise_sd, len(x))
    sd = noise_sd * np.sqrt(rng.chisquare(noise_df) / noise_df) if noise_df else noise_sd
    fit = fit_saturating_power_law(x, error, sd if told else None, noise_df if told else None, n_boot,
                                   seed=int(rng.integers(2 ** 32)))
    low, high = fit.band([at])
    return bool(low[0] <= _law(np.array([at]), *true)[0] <= high[0]), float(high[0] - low[0])


def held_out_coverage(fit: PowerLawFit, x, error, window: int = 7) -> tuple[float, float]:
    """A band scored on held-out points of a curve (e.g. the later epochs of a learning curve):
    the share of points whose smoothed error (a centred running mean over `window` points, in
    x order) it covers, and its median half-width there in log units."""
    order = np.argsort(np.asarray(x, dtype=float))
    x = np.asarray(x, dtype=float)[order]
    smooth = pd.Series(np.asarray(error, dtype=float)[order]).rolling(window, center=True, min_periods=1).mean()
    low, high = fit.band(x)
    inside = (low <= smooth.to_numpy()) & (smooth.to_numpy() <= high)
    return float(inside.mean()), float(np.median(np.log(high / low) / 2))


def learning_curve(history: list[dict], metric: str = "train_loss", n_boot: int = N_BOOT) -> PowerLawFit:
    """The saturating power law of one run's per-epoch metric (a record's `history`) against
    the images it had seen: many points, so its back-tests show how far the law's form holds."""
    rows = [h for h in history if h.get(metric) is not None and np.isfinite(h[metric])]
    if any("images_seen" not in h for h in rows):
        raise ValueError("history: rows have no images_seen (records written before vitlab kept it); rerun the run")
    if len(rows) < MIN_X:
        raise ValueError(f"history: a learning curve needs at least {MIN_X} epochs, got {len(rows)}")
    return fit_saturating_power_law([h["images_seen"] for h in rows], [h[metric] for h in rows], n_boot=n_boot)


def _law(x, a, b, c, e_inf):
    return a * (x + c) ** (-b) + e_inf


def fit_saturating_power_law(x, error, noise_sd=None, noise_df: float | None = None, n_boot: int = N_BOOT,
                             seed: int = 0) -> PowerLawFit:
    """Least-squares fit of error = a (x + c)^(-b) + e_inf, with a, c >= 0, 0 < b <= 10 and
    0 <= e_inf <= min(error), and a band honest when the law is only approximately right.

    The band has three parts. Noise: each form is refitted to its own fitted curve plus Gaussian
    noise, noise_sd (a scalar or one per point, e.g. the seed and test-set error of each point's
    mean, estimated with noise_df degrees of freedom; None: known) or, without it, the residual
    standard error; each refit scales its noise by a draw of the noise estimate's own uncertainty
    (scaled inverse chi-square), so that bands from few points or few seeds are as wide as those
    points allow. Form: half the refits have c free and half c = 0, whatever the number of points
    (the point fit takes the form with the lower AICc). Misfit: the whole procedure is refitted
    without the largest x values and scored on them (`backtest`); log errors beyond what noise and
    the refits' own spread explain widen the band in proportion to the log extrapolation ratio,
    which keeps it honest with 500 points, where the noise part alone shrinks like 1/sqrt(n).

    x is rescaled by its smallest value, so compute in FLOPs and sizes in images fit alike.
    """
    x, error = np.asarray(x, dtype=float), np.asarray(error, dtype=float)
    if x.shape != error.shape or x.ndim != 1:
        raise ValueError(f"x and error: need two 1-D arrays of one length, got {x.shape} and {error.shape}")
    distinct = len(np.unique(x))
    if distinct < MIN_X:
        raise ValueError(f"x: a saturating power law needs at least {MIN_X} distinct x values, got {distinct}")
    if (x <= 0).any():
        raise ValueError("x: must be positive (compute, parameters or training images)")
    if not np.isfinite(error).all() or (error < 0).any():
        raise ValueError("error: must be finite and non-negative")
    sd = None if noise_sd is None else np.broadcast_to(np.asarray(noise_sd, dtype=float), x.shape)
    scale = x.min()
    rng = np.random.default_rng(seed)
    best, form, draws, noise, point_sd = _fit_forms(x / scale, error, sd, noise_df, n_boot // 2, rng)
    boot = _unscale(draws, scale)
    tail = (1 - LEVEL) / 2 * 100
    intervals = {name: (float(np.percentile(boot[:, i], tail)), float(np.percentile(boot[:, i], 100 - tail)))
                 for i, name in enumerate(PARAMS)}
    a, b, c, e_inf = _unscale(best[None], scale)[0]
    return PowerLawFit(float(a), float(b), float(c), float(e_inf), intervals, boot, len(x), len(boot), form, noise,
                       float(x.max()), _backtest(x / scale, error, sd, noise_df, point_sd, rng))


def _fit_forms(x, y, sd, df, per_form, rng):
    """The point fit (the form with the lower AICc), both forms' refits, the noise's description
    and the per-point noise sd used; x in rescaled units."""
    fits = {form: _fit_many(x, y[None], free)[0] for form, free in FORMS.items()}
    sse = {form: ((y - _law(x, *p)) ** 2).sum() for form, p in fits.items()}
    n = len(x)

    def aicc(form):  # unknown noise: n log(SSE/n) + 2k + 2k(k+1)/(n-k-1); known: weighted SSE + 2k
        k = 4 if FORMS[form] else 3
        if sd is not None:
            return (((y - _law(x, *fits[form])) / np.maximum(sd, 1e-12)) ** 2).sum() + 2 * k
        if n - k - 1 <= 0:
            return np.inf
        return n * np.log(max(sse[form], 1e-300) / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)

    form = min(FORMS, key=aicc)
    if sd is None:
        # The residual standard error of the chosen form, or of c = 0 where the free form leaves
        # under two degrees of freedom (an estimate from one is all tail).
        source = form if n - (4 if FORMS[form] else 3) >= 2 else "a x^-b + e_inf"
        df = n - (4 if FORMS[source] else 3)
        sd = np.full(n, np.sqrt(sse[source] / df))
        noise = f"residual standard error ({df} df)"
    else:
        noise = "given noise" + (f" ({df:.3g} df)" if df else "")
    draws = []
    for f, free in FORMS.items():
        inflate = np.sqrt(df / rng.chisquare(df, per_form)) if df else np.ones(per_form)
        noisy = _law(x, *fits[f]) + rng.normal(0, 1, (per_form, n)) * sd * inflate[:, None]
        draws.append(_fit_many(x, noisy, free))
    return fits[form], form, np.concatenate(draws), noise, sd


def _backtest(x, y, sd, df, point_sd, rng) -> BackTest | None:
    """Refit without the largest distinct x values (BACKTEST_SHARES of them), score in log units.

    The misfit kappa is a moment estimate: over held-out points, the squared log error beyond the
    observed point's noise and the refits' spread, regressed on the squared log extrapolation ratio
    through 0 (a misfit grows with how far a law is carried), and never below 0."""
    values = np.unique(x)
    holds = sorted({min(max(round(len(values) * s), 1), len(values) - MIN_X) for s in BACKTEST_SHARES} - {0})
    if not holds:
        return None
    errors, rhos, excess = [], [], []
    for hold in holds:
        edge = values[-hold - 1]
        seen, held = x <= edge, x > edge
        best, _, draws, _, _ = _fit_forms(x[seen], y[seen], None if sd is None else sd[seen], df, BACKTEST_BOOT, rng)
        logs = np.log(np.maximum(np.stack([_law(x[held], *p) for p in draws]), 1e-12))
        error = np.log(np.maximum(_law(x[held], *best), 1e-12)) - np.log(np.maximum(y[held], 1e-12))
        observed = (point_sd[held] / np.maximum(y[held], 1e-12)) ** 2
        errors.append(error)
        rhos.append(np.log(x[held] / edge))
        excess.append(error ** 2 - logs.var(0) - observed)
    errors, rhos, excess = (np.concatenate(v) for v in (errors, rhos, excess))
    misfit2 = max((excess * rhos ** 2).sum() / (rhos ** 4).sum(), 0.0)
    return BackTest(len(holds), len(errors), float(np.exp(rhos.max())), float(np.sqrt((errors ** 2).mean())),
                    float(np.sqrt(misfit2)))


def _unscale(params: np.ndarray, scale: float) -> np.ndarray:
    """From x/scale units back to x's: a (x/s + c')^-b = a s^b (x + c' s)^-b."""
    out = params.copy()
    out[:, 0] = params[:, 0] * scale ** params[:, 1]
    out[:, 2] = params[:, 2] * scale
    return out


def _fit_many(x: np.ndarray, Y: np.ndarray, free_c: bool) -> np.ndarray:
    """Best (a, b, c, e_inf) for each row of Y, x in rescaled units (c = 0 unless free_c).

    For fixed b and c the law is linear in a and e_inf, so those are solved exactly (with their
    bounds) and only b and log(1 + c) are searched: on a grid shared by all rows, then on finer
    grids around each row's best. Written by hand because scipy's optimisers take one problem at
    a time, and a band needs hundreds of refits per fit, each fit several back-tests.
    """
    u_max = np.log1p(10 * x.max()) if free_c else 0.0
    log_b, u = np.meshgrid(_LOG_B, np.linspace(0, u_max, _C_STEPS if free_c else 1))
    log_b, u = log_b.ravel(), u.ravel()
    floor = np.maximum(Y.min(1), 0.0)[:, None]
    phi = (x[None, :] + np.expm1(u)[:, None]) ** -np.exp(log_b)[:, None]  # (grid, n)
    sse, _, _ = _profile(phi[None], Y, floor)
    k = sse.argmin(1)
    lb, lu = log_b[k], u[k]
    step_b, step_u = _LOG_B[1] - _LOG_B[0], u_max / (_C_STEPS - 1) if free_c else 0.0
    offsets = np.linspace(-1, 1, 7)
    for _ in range(4):
        cb = np.clip(lb[:, None, None] + step_b * offsets[None, :, None], _LOG_B[0], _LOG_B[-1])
        cu = np.clip(lu[:, None, None] + step_u * offsets[None, None, :], 0, u_max)
        cb, cu = np.broadcast_arrays(cb, cu)
        cb, cu = cb.reshape(len(Y), -1), cu.reshape(len(Y), -1)
        phi = (x[None, None, :] + np.expm1(cu)[..., None]) ** -np.exp(cb)[..., None]  # (rows, grid, n)
        sse, _, _ = _profile(phi, Y, floor)
        k = sse.argmin(1)
        rows = np.arange(len(Y))
        lb, lu = cb[rows, k], cu[rows, k]
        step_b, step_u = step_b / 3, step_u / 3
    phi = (x[None, :] + np.expm1(lu)[:, None]) ** -np.exp(lb)[:, None]
    sse, a, e = _profile(phi[:, None, :], Y, floor)
    return np.stack([a[:, 0], np.exp(lb), np.expm1(lu), e[:, 0]], axis=1)


def _profile(phi: np.ndarray, Y: np.ndarray, floor: np.ndarray):
    """For each row of Y and each grid curve phi (rows or 1, grid, n): the least-squares a >= 0
    and 0 <= e_inf <= floor, and the SSE; each (rows, grid)."""
    n = Y.shape[1]
    pp, p1 = (phi * phi).sum(-1), phi.sum(-1)
    py = np.einsum("rgn,rn->rg", np.broadcast_to(phi, (len(Y), *phi.shape[1:])), Y)
    y1, yy = Y.sum(1)[:, None], (Y * Y).sum(1)[:, None]
    det = pp * n - p1 * p1
    with np.errstate(divide="ignore", invalid="ignore"):
        candidates = [((py * n - p1 * y1) / det, (pp * y1 - p1 * py) / det)]
        for e in (np.zeros_like(py), np.broadcast_to(floor, py.shape)):
            candidates.append((np.maximum((py - e * p1) / pp, 0), e))
        candidates.append((np.zeros_like(py), np.broadcast_to(np.clip(y1 / n, 0, floor), py.shape)))
    best_sse = np.full(py.shape, np.inf)
    best_a, best_e = np.zeros(py.shape), np.zeros(py.shape)
    for a, e in candidates:
        ok = (a >= 0) & (e >= -1e-12) & (e <= floor + 1e-12) & np.isfinite(a) & np.isfinite(e)
        sse = a * a * pp + 2 * a * e * p1 + n * e * e - 2 * a * py - 2 * e * y1 + yy
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
