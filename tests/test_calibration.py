"""Statistics checked by simulation: studies with a known truth, on the record structure of the
shipped sweeps, run a few hundred times; count how often the code says the wrong thing.

Each run's accuracy is its configuration's true accuracy plus a seed effect (sd 0.02) shared by
its validation and test scores, plus binomial sampling of each split, as a real run's is."""
import dataclasses

import numpy as np
import pandas as pd
import pytest

from vitlab import datasets, scaling, verdicts
from vitlab.plans import load_plan

pytestmark = pytest.mark.slow
SIMULATIONS = 300
SEED_SD = 0.02


def structure(params: str, seeds=(0, 1)):
    """The configs of a shipped params file, each with the given seeds, and a made-up but
    monotone compute per config (flops only order the runs here)."""
    plan = load_plan(f"params/{params}.yaml")
    configs = list({dataclasses.replace(c, seed=s).run_id: dataclasses.replace(c, seed=s)
                    for c in plan.runs for s in seeds}.values())
    return configs


def simulate(configs, truth, rng, flops=lambda c: 1e12) -> pd.DataFrame:
    spec = datasets.spec(configs[0].dataset)
    rows = []
    for cfg in configs:
        q = float(np.clip(truth(cfg) + rng.normal(0, SEED_SD), 0.01, 0.99))
        rows.append({"run_id": cfg.run_id, "status": "ok", **cfg.to_dict(), "train_flops": flops(cfg),
                     "val_accuracy": rng.binomial(spec.n_val, q) / spec.n_val,
                     "test_accuracy": rng.binomial(spec.test_size, q) / spec.test_size})
    return pd.DataFrame(rows)


def decided(claim, configs, truth, flops=lambda c: 1e12, seed=0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    verdicts_ = pd.Series([claim(simulate(configs, truth, rng, flops)).verdict for _ in range(SIMULATIONS)])
    return verdicts_.value_counts(normalize=True).to_dict()


def by_size(cfg, lead=0.0):
    """Accuracy rising with training images; the ResNet ahead by `lead`."""
    return 0.72 + 0.05 * np.log2(cfg.train_size / 250) + (lead if cfg.model == "resnet" else 0.0)


@pytest.mark.parametrize("claim", [verdicts.resnet_wins_on_small_data, verdicts.vit_gains_more_from_data],
                         ids=lambda c: c.__name__)
def test_data_size_claims_under_the_null_are_rarely_decided(claim):
    shares = decided(claim, structure("data_size"), by_size)
    assert shares.get(verdicts.SUPPORTED, 0) + shares.get(verdicts.CONTRADICTED, 0) <= 0.07, shares


def test_a_true_resnet_lead_on_small_data_is_found():
    shares = decided(verdicts.resnet_wins_on_small_data, structure("data_size"), lambda c: by_size(c, 0.08))
    assert shares.get(verdicts.SUPPORTED, 0) >= 0.5, shares
    assert shares.get(verdicts.CONTRADICTED, 0) == 0, shares


def log_compute_flops(cfg):
    """A compute per config that orders the matched-compute sizes within each family."""
    from vitlab.models import build_model
    from vitlab.flops import forward_flops

    return forward_flops(build_model(cfg), (1, 28, 28)) * 3 * 600 * 64


@pytest.fixture(scope="module")
def matched():
    configs = structure("matched_compute")
    flops = {c.run_id: log_compute_flops(c) for c in configs}
    return configs, flops


def on_the_line(flops, lead=None):
    """Test accuracy linear in log10 compute, the same line for every family (the null), or
    with the ViT ahead by `lead`."""
    def truth(cfg):
        base = 0.80 + 0.06 * (np.log10(flops[cfg.run_id]) - 13)
        return base + (lead if lead is not None and cfg.model == "vit" else 0.0)
    return truth


def test_equal_compute_claim_under_the_null_is_rarely_decided(matched):
    configs, flops = matched
    shares = decided(verdicts.vit_beats_resnet_at_equal_compute, configs, on_the_line(flops),
                     lambda c: flops[c.run_id])
    assert shares.get(verdicts.SUPPORTED, 0) + shares.get(verdicts.CONTRADICTED, 0) <= 0.07, shares


def test_equal_compute_claim_finds_a_true_vit_lead(matched):
    configs, flops = matched
    shares = decided(verdicts.vit_beats_resnet_at_equal_compute, configs, on_the_line(flops, 0.10),
                     lambda c: flops[c.run_id])
    assert shares.get(verdicts.SUPPORTED, 0) >= 0.5 and shares.get(verdicts.CONTRADICTED, 0) == 0, shares


def test_hybrid_claim_under_the_null_is_rarely_decided(matched):
    configs, flops = matched
    shares = decided(verdicts.hybrids_help_at_small_compute, configs, on_the_line(flops), lambda c: flops[c.run_id])
    assert shares.get(verdicts.SUPPORTED, 0) + shares.get(verdicts.CONTRADICTED, 0) <= 0.07, shares


@pytest.fixture(scope="module")
def directions():
    configs = structure("scaling_all")
    flops = {c.run_id: log_compute_flops(c) for c in configs}
    return configs, flops


def test_depth_against_width_under_the_null_is_rarely_decided(directions):
    configs, flops = directions
    shares = decided(verdicts.depth_helps_more_than_width, configs, on_the_line(flops), lambda c: flops[c.run_id])
    assert shares.get(verdicts.SUPPORTED, 0) + shares.get(verdicts.CONTRADICTED, 0) <= 0.07, shares


def test_depth_against_width_finds_a_true_difference(directions):
    configs, flops = directions
    base = on_the_line(flops)

    base_flops = next(flops[c.run_id] for c in configs if (c.depth, c.width, c.patch_size) == (4, 64, 7))

    def truth(cfg):  # along depth, accuracy gains 0.25 more per decade of compute than along width
        deeper = cfg.width == 64 and cfg.patch_size == 7
        return base(cfg) + (0.25 * np.log10(flops[cfg.run_id] / base_flops) if deeper else 0.0)

    shares = decided(verdicts.depth_helps_more_than_width, configs, truth, lambda c: flops[c.run_id])
    assert shares.get(verdicts.SUPPORTED, 0) >= 0.5 and shares.get(verdicts.CONTRADICTED, 0) == 0, shares


def law(x, a, b, c, e_inf):
    return a * (x + c) ** (-b) + e_inf


@pytest.mark.parametrize("points", [5, 8, 15])
def test_fit_band_at_ten_times_the_largest_x_covers_the_truth(points):
    """Noisy saturating power laws (noise sd 0.01, estimated from seeds with 10 df as the report
    does): the 95% band at 10x the largest x must cover the true value in at least 85%."""
    rng = np.random.default_rng(points)
    truths = [(1.0, 0.5, 1.0, 0.05), (2.0, 0.35, 0.0, 0.10), (0.6, 0.8, 5.0, 0.02)]
    x = np.logspace(0, 2, points)
    hits, sims = 0, 60
    for i in range(sims):
        true = truths[i % len(truths)]
        error = law(x, *true) + rng.normal(0, 0.01, points)
        sd = 0.01 * np.sqrt(rng.chisquare(10) / 10)
        fit = scaling.fit_saturating_power_law(x, error, noise_sd=sd, noise_df=10, n_boot=60, seed=i)
        low, high = fit.band([1000.0])
        hits += low[0] <= law(1000.0, *true) <= high[0]
        assert fit.kept == fit.n_boot == 60
        assert fit.form == ("a x^-b + e_inf" if points < 6 else "a(x + c)^-b + e_inf")
    assert hits / sims >= 0.85


@pytest.mark.parametrize("points", [5, 8])
def test_fit_band_without_known_noise_covers_the_truth(points):
    """From the residuals alone (no seeds): the band is wider, and still covers."""
    rng = np.random.default_rng(100 + points)
    x = np.logspace(0, 2, points)
    hits, sims = 0, 60
    for i in range(sims):
        error = law(x, 1.0, 0.5, 1.0, 0.05) + rng.normal(0, 0.01, points)
        low, high = scaling.fit_saturating_power_law(x, error, n_boot=60, seed=i).band([1000.0])
        hits += low[0] <= law(1000.0, 1.0, 0.5, 1.0, 0.05) <= high[0]
    assert hits / sims >= 0.85
