"""Per-point tuning, study points and pooled seed noise."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from vitlab import stats, studies
from vitlab.plans import load_plan
from tests.test_verdicts import VIT, RESNET, runs


def test_tuning_keeps_the_configuration_best_on_validation_at_each_point_and_seed():
    specs = []
    for model in (VIT, RESNET):
        for size in (500, 3500):
            for seed in (0, 1):
                for lr, val, test in ((1e-3, 0.80, 0.90), (3e-3, 0.85, 0.70)):  # test would pick 1e-3
                    specs.append(({**model, "train_size": size, "seed": seed, "lr": lr}, test, 1e12, val))
    df = runs(*specs)
    tuned = studies.tuned(df, ["lr"])
    assert len(tuned) == 8 and (tuned["chosen_lr"] == 3e-3).all() and tuned["lr"].isna().all()
    assert (tuned["candidates"] == 2).all() and (tuned["test_accuracy"] == 0.70).all()
    # The kept runs of a point are seeds of one configuration to every study after tuning.
    study = studies.one_factor_study(tuned, "train_size", "vit")
    assert len(study) == 4 and studies.compare(study).noise.df == 2
    assert studies.tuned(df, []) is df


def test_params_tune_blocks_run_as_a_grid_and_name_their_axes(tmp_path):
    p = tmp_path / "tuned.yaml"
    p.write_text("base: {depth: 1, width: 16, heads: 2, mlp_dim: 32, steps: 2}\n"
                 "grid: {train_size: [200, 400]}\ntune: {lr: [0.001, 0.003], weight_decay: [0.0, 0.05]}\n")
    plan = load_plan(p)
    assert plan.tune == ("lr", "weight_decay") and len(plan.runs) == 8
    assert {(c.lr, c.weight_decay) for c in plan.runs} == {(a, b) for a in (0.001, 0.003) for b in (0.0, 0.05)}


def test_pooled_seed_noise_and_contrast_match_the_formula():
    values = pd.Series([0.80, 0.82, 0.90, 0.93, 0.70])
    groups = pd.Series(["a", "a", "b", "b", "c"])
    noise = stats.seed_noise(values, groups)
    assert noise.df == 2 and noise.configs == 2
    assert noise.var == pytest.approx((2 * 0.01 ** 2 + 2 * 0.015 ** 2) / 2)
    est = stats.contrast([stats.Cell(1, 0.91, 2), stats.Cell(-1, 0.81, 2)], noise, 1000)
    se = np.sqrt(noise.var / 2 * 2 + (0.91 * 0.09 + 0.81 * 0.19) / 1000)
    assert est.value == pytest.approx(0.10) and est.high - est.value == pytest.approx(st.t.ppf(0.975, 2) * se)
    assert stats.contrast([stats.Cell(1, 0.9, 1)], stats.seed_noise(values[4:], groups[4:]), 1000) is None


def test_seeds_needed_grows_as_the_difference_shrinks():
    cells = lambda d: [stats.Cell(1, 0.9, 1), stats.Cell(-1, 0.9 - d, 1)]  # noqa: E731
    big, small = stats.seeds_needed(cells(0.10), 8, 1000, 0.02), stats.seeds_needed(cells(0.04), 8, 1000, 0.02)
    assert big == 2 and small > big
    assert stats.seeds_needed(cells(0.001), 8, 1000, 0.02) is None
