"""Where two fitted laws cross: the interval covers a known crossing in simulated studies."""
import numpy as np
import pytest

from tests.helpers import in_parallel, simulated
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

    def trial(rng):
        vit, resnet = _fitted(VIT_LAW, rng, 5, 0.5), _fitted(RESNET_LAW, rng, 5, 1.5)
        seed = int(rng.integers(2 ** 32))
        return (crossing.crossover(vit, resnet, 250, 35000, seed=seed),
                crossing.crossover(vit, _known(resnet), 250, 35000, seed=seed).interval)

    hits, wrong, log_errors, widths = 0, 0, [], []
    for found, (wrong_low, wrong_high) in simulated(trial, 200, seed=1):
        low, high = found.interval
        hits += low <= truth <= high
        log_errors.append(np.log(found.x / truth))
        widths.append(np.log(high / low) if np.isfinite([low, high]).all() else np.inf)
        wrong += wrong_low <= truth <= wrong_high
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
    assert found.text("the ResNet's").startswith("stays above the ResNet's up to 35,000 images (95% interval")
    vit = _fitted(VIT_LAW, np.random.default_rng(2), 2, 1.0)
    crossed = crossing.crossover(vit, resnet, 250, 35000)
    assert 250 < crossed.x < 3500 and crossed.text().startswith(f"falls below the other's at {crossed.x:,.0f} images")


# A matched-compute study: five compute levels per family; at each, six ViT candidates (learning
# rates, equally good) against one ResNet, four seeds each. A seed's luck is in its validation and
# test scores alike, and seed noise falls with compute (the ResNet's 1.5 times the ViT's).
LEVELS = 1e9 * 3.0 ** np.arange(5)
VIT_COMPUTE_LAW, RESNET_COMPUTE_LAW = (0.45, 0.6, 0.02), (0.155, 0.3, 0.06)  # error = a (C / 1e9)^-b + e_inf
VIT_CANDIDATES = (1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3)


def _compute_law(c, a, b, e_inf):
    return a * (c / 1e9) ** -b + e_inf


def _matched_compute_study():
    from tests.helpers import RESNET, VIT, runs

    df = runs(*(({**VIT, "depth": d, "lr": lr, "seed": s}, 0.5, c) for d, c in enumerate(LEVELS, 1)
                for lr in VIT_CANDIDATES for s in range(4)),
              *(({**RESNET, "width": 8 * d, "seed": s}, 0.5, c) for d, c in enumerate(LEVELS, 1) for s in range(4)))
    laws = {"vit": VIT_COMPUTE_LAW, "resnet": RESNET_COMPUTE_LAW}
    truth = np.array([_compute_law(c, *laws[m]) for m, c in zip(df["model"], df["train_flops"])])
    seed_sd = 0.05 * (df["train_flops"].to_numpy() / 1e9) ** -0.4 * np.where(df["model"] == "resnet", 1.5, 1.0)
    return df, truth, seed_sd


def _drawn(df, truth, seed_sd, rng):
    """One simulated study: each run's seed luck shared by its validation and test scores, plus
    each split's sampling of 1,000 images."""
    luck = rng.normal(0, 1, len(df)) * seed_sd
    sampled = np.sqrt(truth * (1 - truth) / 1000)
    val, test = (np.clip(1 - truth - luck + rng.normal(0, 1, len(df)) * sampled, 0, 1) for _ in range(2))
    return df.assign(val_accuracy=val, test_accuracy=test)


def _scored(studied, truth):
    """Coverage of the truth, and each study's log error of the estimate (inf: not the ViT's
    crossing) and log width of its interval (inf: open), over simulated studies."""
    hits, log_errors, widths = 0, [], []
    for first, _, found in in_parallel(lambda study: crossing.crossings(study, "train_flops")[0], studied):
        low, high = found.interval
        hits += first == "vit" and low <= truth <= high
        log_errors.append(np.log(found.x / truth) if first == "vit" and np.isfinite(found.x) else np.inf)
        widths.append(np.log(high / low) if np.isfinite([low, high]).all() else np.inf)
    return hits / len(studied), np.median(log_errors), np.median(widths)


@pytest.mark.slow
def test_the_compute_crossover_covers_the_truth_when_one_family_has_more_candidates(monkeypatch):
    """200 simulated matched-compute studies (six ViT candidates per compute level against one
    ResNet, heteroscedastic seed noise): the interval of where the ViT's law falls below the
    ResNet's covers the true crossing in at least 85% of them, and the estimate is unbiased (within
    a quarter of the interval's width, and within 15% of the crossing's compute). Choosing each
    family's points on the same seeds that measure them (a deliberately wrong selection) lets the
    family with more candidates win by its lucky seeds: its crossing comes too early."""
    from scipy.optimize import brentq

    from vitlab.report import points

    truth = brentq(lambda c: _compute_law(c, *VIT_COMPUTE_LAW) - _compute_law(c, *RESNET_COMPUTE_LAW), 1e9, 81e9)
    df, mean, seed_sd = _matched_compute_study()
    rng = np.random.default_rng(3)
    studied = [_drawn(df, mean, seed_sd, rng) for _ in range(200)]
    coverage, log_error, width = _scored(studied, truth)
    right = points.compare
    monkeypatch.setattr(crossing, "compare", lambda runs, split=False: right(runs, split=False))
    _, wrong_log_error, _ = _scored(studied[:100], truth)
    print(f"compute crossover at {truth:.3g}: coverage {coverage:.3f}, median log error {log_error:+.3f}, "
          f"median log width {width:.2f}; chosen on the measuring seeds: median log error {wrong_log_error:+.3f}")
    assert coverage >= 0.85
    assert abs(log_error) < min(0.25 * width, 0.15)
    assert wrong_log_error < -0.15
