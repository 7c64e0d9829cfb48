"""The claims table decides from runs built for each case; studies find the right runs."""
import numpy as np
import pandas as pd
import pytest

from vitlab import plots, verdicts
from vitlab.config import RunConfig
from vitlab.studies import scaling_directions, two_factor_study

VIT = dict(model="vit", depth=4, width=64, heads=4, mlp_dim=128, patch_size=7, steps=600)
RESNET = dict(model="resnet", depth=8, width=8, steps=600)
HYBRID = dict(model="hybrid", depth=2, width=32, heads=2, mlp_dim=64, patch_size=1, steps=600)


def runs(*specs) -> pd.DataFrame:
    """Records from (config overrides, test accuracy, training FLOPs) triples."""
    rows = []
    for overrides, accuracy, flops in specs:
        cfg = RunConfig.from_dict(overrides)
        rows.append({"run_id": cfg.run_id, "status": "ok", **cfg.to_dict(), "test_accuracy": accuracy,
                     "train_flops": flops, "n_params": 1000 * cfg.depth * (cfg.width or 1)})
    return pd.DataFrame(rows)


def seeds(base, accuracy, flops=1e12, n=3, spread=0.004):
    return [({**base, "seed": s}, accuracy + spread * (s - 1), flops) for s in range(n)]


def data_size(vit_small, res_small, vit_large, res_large, n=3):
    out = []
    for size, v, r in ((500, vit_small, res_small), (4000, vit_large, res_large)):
        out += seeds({**VIT, "train_size": size}, v, n=n) + seeds({**RESNET, "train_size": size}, r, n=n)
    return runs(*out)


def test_difference_over_seeds_and_from_test_set_sampling():
    d = verdicts.difference([0.80, 0.81, 0.82], [0.70, 0.71, 0.72], 1000)
    assert d.value == pytest.approx(0.10) and 0.08 < d.low < d.high < 0.12 and "seeds" in d.basis
    assert d.verdict() == verdicts.SUPPORTED
    one = verdicts.difference([0.80], [0.79], 1000)
    se = np.sqrt(0.8 * 0.2 / 1000 + 0.79 * 0.21 / 1000)
    assert (one.low, one.high) == pytest.approx((0.01 - 1.96 * se, 0.01 + 1.96 * se))
    assert one.verdict() == verdicts.UNDECIDED and "sampling" in one.basis
    assert verdicts.difference([0.5], [0.7], 1000).verdict() == verdicts.CONTRADICTED


def test_small_data_claims_follow_the_runs():
    paper_like = data_size(vit_small=0.60, res_small=0.70, vit_large=0.95, res_large=0.90)
    assert verdicts.resnet_wins_on_small_data(paper_like).verdict == verdicts.SUPPORTED
    assert verdicts.vit_gains_more_from_data(paper_like).verdict == verdicts.SUPPORTED
    opposite = data_size(vit_small=0.75, res_small=0.65, vit_large=0.80, res_large=0.90)
    assert verdicts.resnet_wins_on_small_data(opposite).verdict == verdicts.CONTRADICTED
    assert verdicts.vit_gains_more_from_data(opposite).verdict == verdicts.CONTRADICTED
    v = verdicts.resnet_wins_on_small_data(paper_like)
    assert "at 500 images" in v.evidence and "+0.100" in v.evidence


def test_missing_studies_say_not_enough_runs_and_name_the_params_file():
    only_vit = runs(*seeds(VIT, 0.9))
    table = verdicts.table(only_vit)
    assert len(table) == len(verdicts.CLAIMS) and set(table["verdict"]) == {verdicts.UNDECIDED}
    assert table["evidence"].str.contains(r"run params/\w+\.yaml to decide").all()


def test_patch_and_position_embedding_claims():
    df = runs(*seeds({**VIT, "patch_size": 4}, 0.93), *seeds({**VIT, "patch_size": 14}, 0.85),
              *seeds({**VIT, "pos_embed": "none"}, 0.80), *seeds(VIT, 0.90), *seeds({**VIT, "pos_embed": "learn2d"}, 0.91))
    assert verdicts.smaller_patches_help(df).verdict == verdicts.SUPPORTED
    v = verdicts.position_embedding_helps(df)
    assert v.verdict == verdicts.SUPPORTED and "+0.105" in v.evidence


def test_depth_against_width_uses_the_scaling_directions():
    specs = [(VIT, 0.90, 1e12)]
    for depth, acc, flops in ((2, 0.85, 5e11), (8, 0.95, 2e12), (12, 0.97, 3e12)):
        specs.append(({**VIT, "depth": depth}, acc, flops))
    for width, heads, acc, flops in ((32, 2, 0.89, 5e11), (128, 8, 0.905, 2e12), (192, 12, 0.91, 3e12)):
        specs.append(({**VIT, "width": width, "heads": heads, "mlp_dim": 2 * width}, acc, flops))
    df = runs(*specs)
    directions = scaling_directions(df)
    assert directions.groupby("direction")["run_id"].nunique().to_dict() == {"depth": 4, "width": 4}
    v = verdicts.depth_helps_more_than_width(df)
    assert v.verdict == verdicts.SUPPORTED, v.evidence
    assert "Line plot" in plots.scaling_directions_plot(df).alt


def test_equal_compute_compares_frontiers():
    vit = [({**VIT, "depth": d}, acc, f) for d, acc, f in ((1, 0.80, 1e11), (2, 0.88, 3e11), (4, 0.93, 1e12))]
    res = [({**RESNET, "depth": d}, acc, f) for d, acc, f in ((8, 0.70, 1e11), (14, 0.78, 4e11), (20, 0.85, 1.2e12))]
    better = verdicts.vit_beats_resnet_at_equal_compute(runs(*vit, *res))
    assert better.verdict == verdicts.SUPPORTED, better.evidence
    flipped = [(c, a - 0.2, f) for c, a, f in vit]
    assert verdicts.vit_beats_resnet_at_equal_compute(runs(*flipped, *res)).verdict == verdicts.CONTRADICTED


def test_two_factor_study_and_pooling_figure():
    specs = [({**VIT, "pool": p, "lr": lr, "seed": s}, 0.9, 1e12) for p in ("token", "avg") for lr in (1e-3, 3e-3)
             for s in (0, 1)]
    df = runs(*specs, (VIT | {"depth": 2}, 0.8, 1e12))
    study = two_factor_study(df, "pool", "lr", "vit")
    assert len(study) == 8 and set(study["pool"]) == {"token", "avg"}
    figure = plots.pooling_plot(df)
    assert "class token" in figure.alt and 'alt="Point plot' in figure._repr_html_()
