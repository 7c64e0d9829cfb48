"""Where two fitted laws cross: the interval covers a known crossing in simulated studies."""
import numpy as np
import pytest

from vitlab.report import crossing, scaling

SIZES = np.array([250, 500, 1000, 2000, 3500.0])
VIT_LAW, RESNET_LAW = (0.50, 0.8, 0.01), (0.30, 0.4, 0.04)  # error = a (x / 250)^-b + e_inf


def _law(x, a, b, e_inf):
    return a * (x / 250) ** -b + e_inf


def _fitted(law, rng, seeds, noise):
    """A data-size study as the report fits it: the seed means at each size, each point's noise
    from its own seeds (seed sd falling with data, `noise` times 0.06 at 250 images)."""
    runs = _law(SIZES, *law)[:, None] + rng.normal(0, 1, (len(SIZES), seeds)) * (noise * 0.06 * (SIZES / 250) ** -0.7)[:, None]
    seed = runs.var(1, ddof=1) / seeds
    df = seed.sum() ** 2 / (seed ** 2 / (seeds - 1)).sum()
    return scaling.fit_saturating_power_law(SIZES, np.clip(runs.mean(1), 0, None), noise_sd=np.sqrt(seed), noise_df=df)


def _known(fit):
    """A fit with its uncertainty dropped: every refit is the point fit, no misfit."""
    import dataclasses

    return dataclasses.replace(fit, boot=np.tile([fit.a, fit.b, fit.c, fit.e_inf], (len(fit.boot), 1)), backtest=None)


@pytest.mark.slow
def test_the_crossover_interval_covers_a_known_crossing_and_needs_both_laws_uncertainty():
    """200 simulated studies of two laws that cross at 638 images, five seeds a point, the ResNet's
    seeds three times as noisy as the ViT's: the interval covers the truth in at least 85% of them
    and the estimate is unbiased within the interval's width; ignoring the ResNet law's own
    uncertainty (a deliberately wrong interval) covers it far less often."""
    from scipy.optimize import brentq

    truth = brentq(lambda x: _law(x, *VIT_LAW) - _law(x, *RESNET_LAW), 250, 3500)
    rng = np.random.default_rng(1)
    hits, wrong, log_errors, widths = 0, 0, [], []
    for i in range(200):
        vit, resnet = _fitted(VIT_LAW, rng, 5, 0.5), _fitted(RESNET_LAW, rng, 5, 1.5)
        found = crossing.crossover(vit, resnet, 250, 35000, seed=i)
        low, high = found.interval
        hits += low <= truth <= high
        log_errors.append(np.log(found.x / truth))
        widths.append(np.log(high / low) if np.isfinite([low, high]).all() else np.inf)
        low, high = crossing.crossover(vit, _known(resnet), 250, 35000, seed=i).interval
        wrong += low <= truth <= high
    print(f"crossover at {truth:.0f}: coverage {hits / 200:.3f}, median log error {np.median(log_errors):+.3f}, "
          f"median log width {np.median(widths):.2f}; without the ResNet's uncertainty {wrong / 200:.3f}")
    assert hits / 200 >= 0.85
    assert abs(np.median(log_errors)) < 0.25 * np.median(widths)
    assert wrong / 200 < 0.75


def test_laws_that_do_not_cross_say_so_and_an_interval_can_be_open():
    rng = np.random.default_rng(0)
    above = _fitted((0.6, 0.4, 0.10), rng, 5, 0.2)  # above the ResNet law at every size
    resnet = _fitted(RESNET_LAW, rng, 5, 0.2)
    found = crossing.crossover(above, resnet, 250, 35000)
    assert found.x == np.inf and found.interval[1] == np.inf
    assert found.text(" images", "the ResNet's").startswith("stays above the ResNet's up to 35,000 images (95% interval")
    vit = _fitted(VIT_LAW, np.random.default_rng(2), 2, 1.0)
    crossed = crossing.crossover(vit, resnet, 250, 35000)
    assert 250 < crossed.x < 3500 and crossed.text(" images").startswith(f"falls below the other's at {crossed.x:,.0f} images")
