"""Scaling fits recover known laws; frontiers and trends on hand-made points."""
import numpy as np
import pytest

from vitlab import scaling


def law(x, a, b, c, e_inf):
    return a * (x + c) ** (-b) + e_inf


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("true", [(2.0, 0.6, 3.0, 0.05), (0.8, 0.35, 0.0, 0.12)])
def test_fit_recovers_known_parameters_from_noisy_points(true, seed):
    rng = np.random.default_rng(seed)
    x = np.logspace(0, 4, 40)
    error = law(x, *true) + rng.normal(0, 0.002, len(x))
    fit = scaling.fit_saturating_power_law(x, error, n_boot=100)
    assert fit.b == pytest.approx(true[1], rel=0.10)
    assert fit.e_inf == pytest.approx(true[3], abs=0.01)
    lo, hi = fit.intervals["b"]
    assert lo <= fit.b <= hi and hi - lo < true[1]
    assert np.abs(fit.predict(x) - law(x, *true)).max() < 0.01


def test_fit_works_in_flops_units_and_its_band_covers_the_truth():
    rng = np.random.default_rng(3)
    x = np.logspace(12, 15, 24)  # training FLOPs
    true = (5e3, 0.3, 1e12, 0.02)
    error = law(x, *true) + rng.normal(0, 0.003, len(x))
    fit = scaling.fit_saturating_power_law(x, error)
    assert fit.b == pytest.approx(0.3, rel=0.10) and fit.e_inf == pytest.approx(0.02, abs=0.01)
    beyond = np.array([1e16])  # extrapolation a decade past the data
    lo, hi = fit.band(beyond)
    assert lo[0] <= law(beyond, *true)[0] + 0.01 and law(beyond, *true)[0] - 0.01 <= hi[0]
    assert lo[0] <= fit.predict(beyond)[0] <= hi[0]


def test_fit_refuses_too_few_points():
    with pytest.raises(ValueError, match="at least 4 distinct x"):
        scaling.fit_saturating_power_law([1, 2, 2, 3], [0.5, 0.4, 0.41, 0.3])
    with pytest.raises(ValueError, match="positive"):
        scaling.fit_saturating_power_law([0, 1, 2, 3], [0.5, 0.4, 0.3, 0.2])


def test_pareto_frontier():
    x = [1, 2, 3, 4, 5, 2]
    y = [0.5, 0.4, 0.45, 0.2, 0.2, 0.6]
    assert scaling.pareto_frontier(x, y).tolist() == [True, True, False, True, False, False]


def test_few_points_fit_three_parameters_and_every_refit_is_kept():
    """Found by reading: the bootstrap resampled five points, dropped about half of its
    resamples (fewer than 4 distinct x) without saying so, and the rest nearly interpolated."""
    rng = np.random.default_rng(0)
    x = np.array([250, 500, 1000, 2000, 3500.0])
    error = law(x, 3.0, 0.5, 0.0, 0.03) + rng.normal(0, 0.01, 5)
    fit = scaling.fit_saturating_power_law(x, error, n_boot=100)
    assert fit.form == "a x^-b + e_inf" and fit.c == 0 and (fit.boot[:, 2] == 0).all()
    assert fit.kept == fit.n_boot == 100 and "residual standard error (2 df)" == fit.noise
    low, high = fit.band([35000.0])
    assert high[0] - low[0] > 0.01  # an honest band, not an interpolation's
    six = np.geomspace(250, 8000, 6)
    assert scaling.fit_saturating_power_law(six, law(six, 3.0, 0.5, 10.0, 0.03), n_boot=10).form == \
        "a(x + c)^-b + e_inf"


def test_given_noise_sets_the_band_width():
    x = np.geomspace(1, 100, 8)
    error = law(x, 1.0, 0.5, 1.0, 0.05)
    narrow = scaling.fit_saturating_power_law(x, error, noise_sd=0.002, n_boot=50)
    wide = scaling.fit_saturating_power_law(x, error, noise_sd=0.02, noise_df=4, n_boot=50)
    width = [np.subtract(*f.band([1000.0])[::-1])[0] for f in (narrow, wide)]
    assert 0 < width[0] < width[1] and wide.noise == "given noise (4 df)"
