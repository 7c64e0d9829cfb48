"""Per-point tuning, study points and each point's own seed noise."""
import numpy as np
import pytest
from scipy import stats as st

from tests.helpers import RESNET, VIT, runs
from vitlab.report import points, stats, studies
from vitlab.study.plans import load_plan


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
    assert len(study) == 4 and points.compare(study).points["var_df"].tolist() == [1, 1]
    assert studies.tuned(df, []) is df


def test_params_tune_blocks_run_as_a_grid_and_name_their_axes(tmp_path):
    p = tmp_path / "tuned.yaml"
    p.write_text("base: {depth: 1, width: 16, heads: 2, mlp_dim: 32, steps: 2}\n"
                 "grid: {train_size: [200, 400]}\ntune: {lr: [0.001, 0.003], weight_decay: [0.0, 0.05]}\n")
    plan = load_plan(p)
    assert plan.tune == ("lr", "weight_decay") and len(plan.runs) == 8
    assert {(c.lr, c.weight_decay) for c in plan.runs} == {(a, b) for a in (0.001, 0.003) for b in (0.0, 0.05)}


def test_point_variances_and_contrast_match_the_formula():
    df = runs(*[({**VIT, "train_size": size, "seed": s}, acc, 1e12) for size, accs in ((500, (0.80, 0.82)),
                (3500, (0.90, 0.93))) for s, acc in enumerate(accs)], ({**VIT, "train_size": 1000}, 0.70, 1e12))
    c = points.compare(df)
    assert c.points.set_index("train_size")["var"].round(6).to_dict() == pytest.approx(
        {500: 0.0002, 3500: 0.00045, 1000: np.nan}, nan_ok=True)
    cells = [stats.Cell(1, 0.915, 2, 0.00045, 1), stats.Cell(-1, 0.81, 2, 0.0002, 1)]
    est = stats.contrast(cells, 1000)
    seed = np.array([0.00045 / 2, 0.0002 / 2])
    total = seed.sum() + (0.915 * 0.085 + 0.81 * 0.19) / 1000
    assert est.se == pytest.approx(np.sqrt(total)) and est.df == pytest.approx(min(total ** 2 / (seed ** 2).sum(), 2))
    assert est.interval()[1] - est.value == pytest.approx(st.t.ppf(0.975, est.df) * est.se)
    assert stats.contrast([stats.Cell(1, 0.9, 1)], 1000) is None  # one seed: no variance of its own
    # Cause: two seeds that happened to agree at both points made the seed terms look negligible,
    # so Welch-Satterthwaite gave hundreds of df (a normal quantile); found by the null simulation.
    agree = stats.contrast([stats.Cell(1, 0.8, 2, 1e-8, 1), stats.Cell(-1, 0.7, 2, 1e-8, 1)], 1000)
    assert agree.df == 2


def test_seeds_needed_grows_as_the_difference_shrinks():
    def cells(d):
        return lambda n: [stats.Cell(1, 0.9, n, 0.02 ** 2, n - 1), stats.Cell(-1, 0.9 - d, n, 0.02 ** 2, n - 1)]
    big, small = stats.seeds_needed(cells(0.10), 1000, 0.05), stats.seeds_needed(cells(0.06), 1000, 0.05)
    assert big == 3 and small > big
    assert stats.seeds_needed(cells(0.001), 1000, 0.05) is None
    # Power at the size found is at least 80%, and one seed fewer would not give it.
    assert stats.power(cells(0.06)(small), 1000, 0.05) >= 0.8 > stats.power(cells(0.06)(small - 1), 1000, 0.05)
    # The bisection finds what a scan of every seed count from 2 up finds.
    for d in np.linspace(0.015, 0.2, 12):
        scan = next((n for n in range(2, stats.MAX_SEEDS + 1) if stats.power(cells(d)(n), 1000, 0.05) >= stats.POWER),
                    None)
        assert stats.seeds_needed(cells(d), 1000, 0.05) == scan, d


def test_seeds_needed_power_by_simulation():
    """The power promised for the seeds needed is what simulated studies of that size get."""
    rng = np.random.default_rng(0)
    sd, diff, alpha = 0.03, 0.07, 0.01
    n = stats.seeds_needed(lambda k: [stats.Cell(1, 0.9, k, sd ** 2, k - 1), stats.Cell(-1, 0.9 - diff, k, sd ** 2, k - 1)],
                           1000, alpha)
    hits = 0
    for _ in range(400):
        a, b = rng.normal(0.9, sd, n), rng.normal(0.9 - diff, sd, n)
        # the test set's sampling error, shared by each point's seeds
        a, b = a + rng.normal(0, np.sqrt(0.9 * 0.1 / 1000)), b + rng.normal(0, np.sqrt(0.85 * 0.15 / 1000))
        est = stats.contrast([stats.Cell(1, a.mean(), n, a.var(ddof=1), n - 1),
                              stats.Cell(-1, b.mean(), n, b.var(ddof=1), n - 1)], 1000)
        hits += est.p <= alpha
    assert 0.72 <= hits / 400, (n, hits)


def test_tuning_chooses_on_the_other_seeds_so_the_kept_test_score_is_not_picked_for_luck():
    # Cause: each seed's best lr was chosen on that seed's own validation score, whose luck is in
    # its test score too: among three equal lrs the kept runs came out ahead of the truth.
    rng = np.random.default_rng(0)
    kept = []
    for trial in range(60):
        specs = []
        for seed in (0, 1, 2):
            for lr in (1e-3, 3e-3, 1e-2):
                luck = rng.normal(0, 0.05)  # one seed effect in both splits; every lr equally good
                specs.append(({**VIT, "seed": seed, "lr": lr}, 0.8 + luck, 1e12, 0.8 + luck))
        kept += list(studies.tuned(runs(*specs), ["lr"])["test_accuracy"] - 0.8)
    assert len(kept) == 180 and abs(np.mean(kept)) < 3 * 0.05 / np.sqrt(180)
