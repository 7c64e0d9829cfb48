"""Scaling-law bands checked against a known truth: laws of several forms fitted to 5 to 60
points with given or estimated noise, laws of another form fitted to 500, and real learning
curves, published and our own. Each deliberately wrong band (one form only; the percentile
interval alone; no misfit term) fails one of these checks."""
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import VIT, runs, share_above, share_below, simulated
from vitlab.report import scaling, tables

# True laws a (x + c)^-b + e_inf on 250-3,500 images, noise sd 0.01, extrapolated to 35,000.
LAWS = {"large offset": (6.0, 0.5, 1000.0, 0.03),  # the case: c = 0 assumed missed it
        "zero offset": (3.0, 0.5, 0.0, 0.03),
        "nearly saturated": (2.0, 0.8, 0.0, 0.10),  # within 0.03 of e_inf over the whole range
        "far from saturation": (1.5, 0.3, 0.0, 0.0)}
POINTS = (5, 8, 15, 60)
SIMS = 200
N_BOOT = 100
DATA = Path(__file__).parent / "data"
COVERED = 0.85  # the least share of simulations whose band at 10x must cover the truth


def trials(law, points, told=True, clear=None) -> list[tuple[bool, float]]:
    """(covered, width) of up to SIMS simulated fits of a design, stopped once clear."""
    return simulated(lambda rng: scaling.band_trial(LAWS[law], np.geomspace(250, 3500, points), 35000.0, 0.01, 10,
                                                    told, N_BOOT, rng), SIMS, seed=points, clear=clear)


CASES = [(law, points, told) for law in LAWS for points in POINTS for told in (True, False)]


@pytest.mark.slow  # 32 designs x up to 200 simulated fits each
@pytest.mark.parametrize("case", CASES, ids=[f"{law}-{points}-{'given' if told else 'residual'}"
                                              for law, points, told in CASES])
def test_band_at_ten_times_the_largest_x_covers_the_truth(case):
    """At least 85% of 200 simulations each, looked at after every 50 and stopped once the share
    is clearly above 85% (a coverage of 85% gives the hits seen by then with chance at most
    1e-3); the median width is printed with -s."""
    covered, widths = zip(*trials(*case, clear=share_above(COVERED, hit=lambda r: r[0])))
    print(f"{case}: covered {np.mean(covered):.3f} of {len(covered)}, median width {np.median(widths):.3f}")
    assert np.mean(covered) >= COVERED


def test_one_form_only_misses_a_law_with_a_large_offset(monkeypatch):
    """The old band (c fixed at 0 below six points, nothing else) covered this truth in 25% of
    simulations; with c = 0 alone and the rest of today's band, about 71%: the grid test fails
    (stopped once the share is clearly below 85%)."""
    monkeypatch.setattr(scaling, "FORMS", {"a x^-b + e_inf": False})
    covered = [hit for hit, _ in trials("large offset", 5, clear=share_below(COVERED, hit=lambda r: r[0]))]
    assert np.mean(covered) < COVERED, len(covered)


def test_the_percentile_interval_alone_misses_a_nearly_saturated_law(monkeypatch):
    monkeypatch.setattr(scaling, "_refit_interval", lambda centre, low, high: (low, high))
    covered, _ = scaling.band_coverage(LAWS["nearly saturated"], np.geomspace(250, 3500, 60), 35000.0, 0.01, sims=60,
                                       n_boot=N_BOOT, seed=60)
    assert covered < 0.6  # about 25%: refits of a curve fitted too steep stay below the truth


MISSPECIFIED = {"logarithmic": lambda x: 0.6 / (1 + 0.5 * np.log(x)) ** 1.5 + 0.02,
                "broken power law": lambda x: 0.5 * x ** -0.2 * (1 + x / 30) ** -0.3 + 0.01}


@pytest.mark.parametrize("name", MISSPECIFIED)
def test_with_500_points_of_another_law_the_misfit_keeps_the_band_honest(name):
    """Noise alone shrinks like 1/sqrt(n); the back-tested misfit does not. Without it the band
    at 3x covered these laws in 0-5% of simulations."""
    truth, x, at = MISSPECIFIED[name], np.geomspace(1, 1000, 500), np.array([3000.0])
    rng = np.random.default_rng(0)
    hits = hits_without = 0
    sims = 20
    for i in range(sims):
        fit = scaling.fit_saturating_power_law(x, truth(x) + rng.normal(0, 0.0005, len(x)), n_boot=N_BOOT, seed=i)
        assert fit.backtest.misfit > 0 and not fit.supported(at * 20)[0]
        no_misfit = dataclasses.replace(fit, backtest=dataclasses.replace(fit.backtest, misfit=0.0))
        for f, count in ((fit, True), (no_misfit, False)):
            low, high = f.band(at)
            inside = low[0] <= truth(at)[0] <= high[0]
            hits, hits_without = (hits + inside, hits_without) if count else (hits, hits_without + inside)
    assert hits / sims >= 0.85 and hits_without / sims < 0.5


def held_out_score(fitted: pd.DataFrame, held: pd.DataFrame) -> tuple[float, float]:
    fit = scaling.fit_saturating_power_law(fitted["x"].to_numpy(float), fitted["error"].to_numpy(float))
    return scaling.held_out_coverage(fit, held["x"], held["error"])


def curves(path: Path):
    df = pd.read_csv(path).sort_values(["curve", "x"])
    for name, curve in df.groupby("curve"):
        yield name, curve[curve["fitted"] == 1], curve[curve["fitted"] == 0]


def eight(points: pd.DataFrame) -> pd.DataFrame:
    """Eight points spread evenly in log x over a curve's fitted part."""
    index = np.unique(np.round(np.geomspace(1, len(points), 8)).astype(int) - 1)
    return points.iloc[index]


@pytest.mark.parametrize("subset", ["all points", "8 points"])
def test_published_learning_curves_held_out_beyond_the_fit(subset):
    """Few-shot error of ViT-B/16 and Mixer-B/16 against examples seen (Alabdulmohsin et al.
    2022's benchmark, tests/data/README.md), fitted on the first part and scored on the rest,
    1.2-2.1x beyond: the acceptance measure is a mean coverage of at least 0.80 and, with 8
    points, a median half-width of at most 0.20 in log units."""
    scores = [held_out_score(fitted if subset == "all points" else eight(fitted), held)
              for _, fitted, held in curves(DATA / "learning_curves.csv")]
    covered, half_widths = zip(*scores)
    assert np.mean(covered) >= 0.80
    assert np.median(half_widths) <= 0.20


def test_our_own_learning_curves_held_out_beyond_the_fit():
    """Training loss against images seen of vitlab runs (tests/data/README.md), fitted on the
    first 60% of epochs and scored on the rest: the same measure as for published curves."""
    covered = [held_out_score(fitted, held)[0] for _, fitted, held in curves(DATA / "vitlab_learning_curves.csv")]
    assert np.mean(covered) >= 0.80


def test_fits_table_shows_each_back_test_and_marks_a_prediction_beyond_it():
    sizes = [250, 500, 1000, 2000, 3500]
    df = runs(*(({**VIT, "train_size": n, "seed": s}, 1 - (0.03 + 3 * n ** -0.5) + 0.004 * (s - 1), 1e12)
                for n in sizes for s in range(3)))
    row = tables.fits_table(df).data.iloc[0]
    assert row["study"] == "vit: training set size" and row["points"] == 5
    assert row["back-test"].startswith("log-RMSE") and row["back-test"].endswith("up to 1.8x")
    assert row["error at 10x the largest x"].endswith("(beyond the back-tests)")
    assert "given noise" in row["noise"]
