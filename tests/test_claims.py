"""The claims table decides from runs built for each case; studies find the right runs.

Each verdict is a contrast of study points with a t interval (vitlab.report.stats); the tests named
for a cause failed on the verdicts before it (percentile bootstrap over two seeds, binomial
error alone with one seed, half-widths added, frontier points taken as independent, the hybrid
claim decided on a point estimate, selection on the test split)."""
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from tests.helpers import HYBRID, RESNET, VIT, runs
from vitlab.report import claims, figures, points, studies
from vitlab.report.studies import scaling_directions, two_factor_study


def seeds(base, accuracy, flops=1e12, n=3, spread=0.004):
    return [({**base, "seed": s}, accuracy + spread * (s - 1), flops) for s in range(n)]


def data_size(vit_small, res_small, vit_large, res_large, n=3):
    out = []
    for size, v, r in ((500, vit_small, res_small), (3500, vit_large, res_large)):
        out += seeds({**VIT, "train_size": size}, v, n=n) + seeds({**RESNET, "train_size": size}, r, n=n)
    return runs(*out)


def welch(cells, test_size=1000):
    """(se, df) of a contrast from (weight, mean, seed variance, seeds) cells, by hand."""
    seed = np.array([w ** 2 * v / n for w, _, v, n in cells])
    total = seed.sum() + sum(w ** 2 * p * (1 - p) / test_size for w, p, _, _ in cells)
    welch_df = total ** 2 / sum(t ** 2 / (n - 1) for t, (_, _, _, n) in zip(seed, cells))
    return np.sqrt(total), min(welch_df, sum(n - 1 for *_, n in cells))


def test_each_point_has_its_own_seed_variance_with_welch_satterthwaite_df():
    # Cause: seed variance pooled over the study, although it shrinks severalfold as data grows;
    # a pooled value is too narrow where seeds vary most.
    df = runs(({**VIT, "train_size": 500, "seed": 0}, 0.80, 1e12), ({**VIT, "train_size": 500, "seed": 1}, 0.82, 1e12),
              ({**RESNET, "train_size": 500, "seed": 0}, 0.86, 1e12), ({**RESNET, "train_size": 500, "seed": 1}, 0.90, 1e12),
              ({**VIT, "train_size": 3500, "seed": 0}, 0.95, 1e12), ({**RESNET, "train_size": 3500, "seed": 0}, 0.93, 1e12))
    v = claims.verdict(claims.resnet_wins_on_small_data, df)
    se, dof = welch([(1, 0.88, 0.0008, 2), (-1, 0.81, 0.0002, 2)])
    half = st.t.ppf(0.975, dof) * se
    assert f"{0.07 - half:+.3f} to {0.07 + half:+.3f}, t with {dof:.1f} df" in v.evidence, v.evidence
    assert v.verdict == claims.UNDECIDED
    assert "ResNet: 2 runs, ViT: 2 runs" in v.evidence and "seed sd 0.014 to 0.028 estimated at each of 2 points" in v.evidence


def test_one_seed_per_configuration_is_never_decided_and_says_how_many_seeds_would():
    # Cause: with one seed, test-set sampling error alone decided (seed variance ignored).
    df = data_size(vit_small=0.60, res_small=0.70, vit_large=0.95, res_large=0.90, n=1)
    for claim in (claims.resnet_wins_on_small_data, claims.vit_gains_more_from_data):
        v = claims.verdict(claim, df)
        assert v.verdict == claims.UNDECIDED, v.evidence
        assert "were run with one seed, so their seed variance is unknown" in v.evidence
        assert re.search(r"\b\d+ to \d+ seeds per configuration would give 80% power", v.evidence), v.evidence
        assert "if seeds vary 1 to 3 times the test set's sampling sd" in v.evidence
    tiny = data_size(vit_small=0.700, res_small=0.701, vit_large=0.95, res_large=0.90, n=1)
    assert "no number of seeds up to 20" in claims.verdict(claims.resnet_wins_on_small_data, tiny).evidence


def test_a_point_with_one_seed_does_not_borrow_another_points_variance():
    # Cause: a one-seed ResNet point was given the ViT's pooled seed variance and decided.
    df = runs(*seeds({**VIT, "train_size": 500}, 0.80, n=3, spread=0.003), ({**RESNET, "train_size": 500}, 0.95, 1e12),
              ({**VIT, "train_size": 3500}, 0.95, 1e12), ({**RESNET, "train_size": 3500}, 0.93, 1e12))
    v = claims.verdict(claims.resnet_wins_on_small_data, df)
    assert v.verdict == claims.UNDECIDED and "1 of its points were run with one seed" in v.evidence, v.evidence


def test_gains_more_combines_all_four_cells_variances():
    # Cause: the gains-more interval combined upper half-widths of two bootstrap intervals.
    df = data_size(vit_small=0.60, res_small=0.70, vit_large=0.95, res_large=0.90)
    v = claims.verdict(claims.vit_gains_more_from_data, df)
    var = 0.004 ** 2  # three seeds at each of four configurations, 0.004 apart
    se, dof = welch([(w, p, var, 3) for w, p in ((-1, 0.60), (1, 0.70), (1, 0.95), (-1, 0.90))])
    half = st.t.ppf(0.975, dof) * se
    assert v.verdict == claims.SUPPORTED and f"{0.15 - half:+.3f} to {0.15 + half:+.3f}" in v.evidence, v.evidence


def test_studies_on_different_datasets_or_budgets_are_not_compared():
    # Cause: a ViT on mnist5k (600 steps) against a ResNet on digits (5 epochs) was judged
    # "supported, +0.200".
    vit = [({**VIT, "train_size": n, "seed": s}, a, 1e12) for n, a in ((250, 0.6), (1000, 0.9)) for s in (0, 1)]
    resnet = [({**RESNET, "dataset": "digits", "steps": None, "epochs": 5, "train_size": n, "seed": s}, a + 0.2 + s / 100,
               1e12) for n, a in ((250, 0.6), (1000, 0.7)) for s in (0, 1)]
    v = claims.verdict(claims.resnet_wins_on_small_data, runs(*vit, *resnet))
    assert v.verdict == claims.NOT_COMPARABLE, v.evidence
    assert "dataset (ViT: mnist5k; ResNet: digits)" in v.evidence and "budget (ViT: 600 steps; ResNet: 5 epochs)" in v.evidence
    # With a comparable ResNet study beside it, that one is used.
    comparable = [({**RESNET, "train_size": n, "seed": s}, a + s / 100, 1e12) for n, a in ((250, 0.7), (1000, 0.95))
                  for s in (0, 1)]
    v = claims.verdict(claims.resnet_wins_on_small_data, runs(*vit, *resnet, *comparable))
    assert "+0.105" in v.evidence, v.evidence


def test_small_data_claims_follow_the_runs():
    paper_like = data_size(vit_small=0.60, res_small=0.70, vit_large=0.95, res_large=0.90)
    assert claims.verdict(claims.resnet_wins_on_small_data, paper_like).verdict == claims.SUPPORTED
    assert claims.verdict(claims.vit_gains_more_from_data, paper_like).verdict == claims.SUPPORTED
    opposite = data_size(vit_small=0.75, res_small=0.65, vit_large=0.80, res_large=0.90)
    assert claims.verdict(claims.resnet_wins_on_small_data, opposite).verdict == claims.CONTRADICTED
    assert claims.verdict(claims.vit_gains_more_from_data, opposite).verdict == claims.CONTRADICTED
    v = claims.verdict(claims.resnet_wins_on_small_data, paper_like)
    assert "at 500 images" in v.evidence and "+0.100" in v.evidence


def test_missing_studies_say_not_enough_runs_and_name_the_params_file():
    only_vit = runs(*seeds(VIT, 0.9))
    table = claims.table(only_vit)
    assert len(table) == len(claims.CLAIMS) and set(table["verdict"]) == {claims.UNDECIDED}
    assert table["evidence"].str.contains(r"run params/\w+\.yaml to decide").all()


def test_patch_and_position_embedding_claims():
    df = runs(*seeds({**VIT, "patch_size": 4}, 0.93), *seeds({**VIT, "patch_size": 14}, 0.85),
              *seeds({**VIT, "pos_embed": "none"}, 0.80), *seeds(VIT, 0.90), *seeds({**VIT, "pos_embed": "learn2d"}, 0.91))
    assert claims.verdict(claims.smaller_patches_help, df).verdict == claims.SUPPORTED
    v = claims.verdict(claims.position_embedding_helps, df)
    assert v.verdict == claims.SUPPORTED and "learn minus none, test accuracy +0.100" in v.evidence
    assert "learn2d minus none, test accuracy +0.110" in v.evidence


def test_one_position_embedding_worse_than_none_contradicts_the_claim():
    # Cause: the claim was the mean of the variants minus none, so one bad variant hid behind two good ones.
    df = runs(*seeds({**VIT, "pos_embed": "none"}, 0.80), *seeds(VIT, 0.95), *seeds({**VIT, "pos_embed": "learn2d"}, 0.95),
              *seeds({**VIT, "pos_embed": "sincos2d"}, 0.70))
    v = claims.verdict(claims.position_embedding_helps, df)
    assert v.verdict == claims.CONTRADICTED and "sincos2d minus none, test accuracy -0.100" in v.evidence, v.evidence


def direction_runs(depth_accs, width_accs, n=2, spread=0.004, mlp_accs=(), coupled_accs=()):
    """Runs along depth and width (heads following it) from VIT's base; with mlp_accs, along MLP
    size too; with coupled_accs, width sweeps that moved the MLP size with the width."""
    specs = seeds(VIT, 0.90, 1e12, n=n, spread=spread)
    for (depth, flops), acc in zip(((2, 5e11), (8, 2e12), (12, 3e12)), depth_accs):
        specs += seeds({**VIT, "depth": depth}, acc, flops, n=n, spread=spread)
    for (width, flops), acc in zip(((32, 5e11), (128, 2e12), (192, 3e12)), width_accs):
        specs += seeds({**VIT, "width": width, "heads": None}, acc, flops, n=n, spread=spread)
    for (mlp, flops), acc in zip(((64, 7e11), (256, 1.6e12), (512, 2.8e12)), mlp_accs):
        specs += seeds({**VIT, "mlp_dim": mlp}, acc, flops, n=n, spread=spread)
    for (width, flops), acc in zip(((32, 4e11), (128, 2.5e12)), coupled_accs):
        specs += seeds({**VIT, "width": width, "heads": None, "mlp_dim": 2 * width}, acc, flops, n=n, spread=spread)
    return runs(*specs)


def test_depth_against_width_uses_the_scaling_directions():
    df = direction_runs((0.85, 0.95, 0.97), (0.89, 0.905, 0.91))
    directions = scaling_directions(df)
    assert directions.groupby("direction")["run_id"].nunique().to_dict() == {"depth": 8, "width": 8}
    v = claims.verdict(claims.depth_helps_more_than_width, df)
    assert v.verdict == claims.SUPPORTED, v.evidence
    assert "depth: 4 points, width: 4 points" in v.evidence
    assert "Line plot" in figures.scaling_directions_plot(df).alt
    assert claims.verdict(claims.depth_helps_more_than_width, direction_runs((0.85, 0.95, 0.97), (0.89, 0.905, 0.91), n=1)
                                               ).verdict == claims.UNDECIDED


def test_mlp_size_is_a_direction_of_its_own_and_a_width_sweep_that_moved_it_is_neither():
    df = direction_runs((0.85, 0.95, 0.97), (0.89, 0.905, 0.91), mlp_accs=(0.80, 0.96, 0.99),
                        coupled_accs=(0.70, 0.99))
    directions = scaling_directions(df)
    assert directions.groupby("direction")["run_id"].nunique().to_dict() == {
        "depth": 8, "width": 8, "MLP size": 8, "width + MLP size": 6}
    # The coupled runs change neither the width's trend nor the depth-against-width verdict.
    alone = claims.verdict(claims.depth_helps_more_than_width, direction_runs((0.85, 0.95, 0.97), (0.89, 0.905, 0.91)))
    assert claims.verdict(claims.depth_helps_more_than_width, df).evidence == alone.evidence
    best = claims.ledger(df)[claims.best_direction]
    assert best.detail["ranked"] == ("MLP size", "depth") and set(best.detail["trends"]) == {"depth", "width", "MLP size"}
    assert "MLP size" in figures.scaling_directions_plot(df).alt
    assert "MLP size (hidden units) for 4 values" in figures.accuracy_vs(df, "mlp_dim").alt


def frontier_runs(vit_accs, res_accs, n=2, spread=0.004, vit_flops=(1e11, 3e11, 1e12), res_flops=(1e11, 4e11, 1.2e12)):
    specs = []
    for d, acc, f in zip((1, 2, 4), vit_accs, vit_flops):
        specs += seeds({**VIT, "depth": d}, acc, f, n=n, spread=spread)
    for d, acc, f in zip((8, 14, 20), res_accs, res_flops):
        specs += seeds({**RESNET, "depth": d}, acc, f, n=n, spread=spread)
    return runs(*specs)


def test_equal_compute_compares_frontiers():
    better = claims.verdict(claims.vit_beats_resnet_at_equal_compute, frontier_runs((0.80, 0.88, 0.93), (0.70, 0.78, 0.85)))
    assert better.verdict == claims.SUPPORTED, better.evidence
    worse = frontier_runs((0.60, 0.68, 0.73), (0.70, 0.78, 0.85))
    assert claims.verdict(claims.vit_beats_resnet_at_equal_compute, worse).verdict == claims.CONTRADICTED


def test_frontier_gap_counts_the_shared_resnet_points_once():
    # Cause: the mean gap over ViT frontier points divided its error by sqrt(points), as if
    # every point met an independent ResNet frontier. Here all three ViT points sit between the
    # same two ResNet points, so the gap's error is at least the error of their interpolation.
    df = frontier_runs((0.80, 0.81, 0.82), (0.78, 0.83, 0.85), vit_flops=(1.5e11, 2e11, 2.5e11))
    c, front = points.frontiers(studies.compute_group(df, ("vit", "resnet")), ("vit", "resnet"))
    gaps = points.frontier_gaps(front["vit"], front["resnet"])
    assert len(gaps) == 3
    est = c.contrast(points.mean_weights(gaps))
    resnet_only = c.contrast({k: w for k, w in points.mean_weights(gaps).items() if k[0] == "resnet"})
    assert est.se >= resnet_only.se


def test_frontiers_stay_within_one_dataset_and_size_and_exclude_fine_tuned_runs():
    df = frontier_runs((0.80, 0.88, 0.93), (0.70, 0.78, 0.85))
    other = runs(*seeds({**VIT, "depth": 1, "train_size": 500}, 0.99, 1e11),
                 *seeds({**VIT, "depth": 2, "pretrained": "0123456789ab"}, 0.99, 2e11))
    group = studies.compute_group(pd.concat([df, other]), ("vit", "resnet"))
    assert set(group["train_size"]) == {3500} and group["pretrained"].isna().all() and len(group) == len(df)


def test_frontier_membership_is_chosen_on_validation():
    # Cause: frontiers were the runs best on the test split.
    df = runs(({**VIT, "depth": 1}, 0.80, 1e11, 0.80), ({**VIT, "depth": 2}, 0.95, 2e11, 0.70),
              ({**VIT, "depth": 4}, 0.85, 4e11, 0.85))
    front = points.frontier(points.compare(df).points)
    assert front["depth"].tolist() == [1, 4]


def test_a_frontier_point_chosen_for_a_lucky_seed_is_measured_on_its_other_seed():
    # Cause: frontier membership and the test accuracy reported came from the same seeds, so the
    # family with more candidates won by picking lucky ones.
    df = runs(({**VIT, "depth": 1, "seed": 0}, 0.99, 1e11, 0.99), ({**VIT, "depth": 1, "seed": 1}, 0.80, 1e11, 0.80),
              ({**VIT, "depth": 2, "seed": 0}, 0.85, 2e11, 0.85), ({**VIT, "depth": 2, "seed": 1}, 0.86, 2e11, 0.86))
    _, front = points.frontiers(df, ("vit",))
    assert front["vit"]["depth"].tolist() == [1] and front["vit"]["test_accuracy"].tolist() == [0.80]
    assert front["vit"]["n"].tolist() == [1] and front["vit"]["var"].iloc[0] == pytest.approx(0.19 ** 2 / 2)


def test_holm_decides_in_steps_with_intervals_that_match():
    from vitlab.report import stats
    estimates = [stats.Estimate(v, 1.0, 1e6) for v in (2.576, 2.054, 2.17, 0.674)]  # p about .01, .04, .03, .5
    decisions = stats.holm(estimates)
    assert [d.decided for d in decisions] == [1, 0, 0, 0]
    assert decisions[0].level == pytest.approx(1 - 0.05 / 4) and decisions[2].level == pytest.approx(1 - 0.05 / 3)
    for e, d in zip(estimates, decisions):
        low, _ = e.interval(d.level)
        assert (low > 0) == bool(d.decided)
    assert [d.decided for d in stats.holm([stats.Estimate(-3.0, 1.0, 1e6), None])] == [-1, 0]


def test_the_claims_table_corrects_over_every_test_of_the_report():
    # A difference decided alone at 95% is undecided among the report's other tests.
    df = pd.concat([data_size(vit_small=0.60, res_small=0.70, vit_large=0.95, res_large=0.90),
                    runs(*seeds({**VIT, "pos_embed": "none"}, 0.80), *seeds({**VIT, "pos_embed": "learn2d"}, 0.81),
                         *seeds({**VIT, "pos_embed": "sincos2d"}, 0.80), *seeds({**VIT, "pos_embed": "learn"}, 0.795))])
    led = claims.ledger(df)
    assert led.tests == 5 and "over the report's 5 tests" in led.note()
    alone = claims.verdict(claims.resnet_wins_on_small_data, df)
    assert "95% interval" in alone.evidence and "99% interval" in led.verdicts()[0].evidence


def test_hybrid_claim_needs_intervals_not_point_estimates():
    # Cause: decided on the point estimates of the gap, with no interval for the small end.
    def hybrid(vit_accs, hyb_accs, spread):
        specs = []
        for d, acc, f in zip((1, 2, 4), vit_accs, (1e11, 3e11, 1e12)):
            specs += seeds({**VIT, "depth": d}, acc, f, n=2, spread=spread)
        for d, acc, f in zip((1, 2, 4), hyb_accs, (1e11, 3e11, 1e12)):
            specs += seeds({**HYBRID, "depth": d}, acc, f, n=2, spread=spread)
        return runs(*specs)

    clear = claims.verdict(claims.hybrids_help_at_small_compute, hybrid((0.80, 0.90, 0.95), (0.90, 0.93, 0.95), 0.004))
    assert clear.verdict == claims.SUPPORTED, clear.evidence
    noisy = claims.verdict(claims.hybrids_help_at_small_compute, hybrid((0.80, 0.90, 0.95), (0.90, 0.93, 0.95), 0.06))
    assert noisy.verdict == claims.UNDECIDED, noisy.evidence


def test_two_factor_study_and_pooling_figure():
    specs = [({**VIT, "pool": p, "lr": lr, "seed": s}, 0.9, 1e12) for p in ("token", "avg") for lr in (1e-3, 3e-3)
             for s in (0, 1)]
    df = runs(*specs, (VIT | {"depth": 2}, 0.8, 1e12))
    study = two_factor_study(df, "pool", "lr", "vit")
    assert len(study) == 8 and set(study["pool"]) == {"token", "avg"}
    figure = figures.pooling_plot(df)
    assert "class token" in figure.alt and 'alt="Point plot' in figure._repr_html_()
