"""The paper's qualitative claims, each with the verdict a user's own runs support.

Every verdict rests on a contrast of study points (seed means of test accuracy) with a 95%
t interval from vitlab.stats: seed-to-seed variance pooled over the study's repeated
configurations plus the test set's sampling error. A claim is supported when the interval
lies on the claimed side of zero, contradicted when it lies on the other, and otherwise there
are not enough runs to tell; a study with no repeated configuration is never decided, and the
verdict says how many seeds might decide it. Points on frontiers are chosen on validation error.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from vitlab.studies import (Comparison, combine, compare, compute_group, direction_trends, frontier_gaps, frontiers,
                            mean_weights, one_factor_study)

SUPPORTED, CONTRADICTED, UNDECIDED = "supported", "contradicted", "not enough runs"


@dataclass
class Verdict:
    claim: str
    paper: str
    verdict: str
    evidence: str
    fill: str  # the params file whose runs decide it


def _noise_text(c: Comparison) -> str:
    return (f"seed sd {c.noise.sd:.3f} pooled over {c.noise.configs} repeated configurations ({c.noise.df} df), "
            f"plus sampling error of {c.test_size:,} test images")


def _judge(claim: str, paper: str, fill: str, c: Comparison, weights: dict, what: str, sides: str) -> Verdict:
    """Decide a claim whose contrast (weights on point accuracies) is positive when it holds."""
    est = c.contrast(weights)
    if est is None:
        value = sum(cell.weight * cell.mean for cell in c.cells(weights))
        n = c.seeds_needed(weights)
        more = (f"at least {n} seeds per configuration would decide a difference this large if seeds varied "
                f"no more than the test set's sampling error" if n else "no number of seeds would decide a difference "
                "this small at this test-set size")
        return Verdict(claim, paper, UNDECIDED,
                       f"{what} {value:+.3f} from {sides}, but no configuration was run with two or more seeds, so "
                       f"seed-to-seed variance is unknown; {more}", fill)
    verdict = {1: SUPPORTED, -1: CONTRADICTED, 0: UNDECIDED}[est.decided()]
    return Verdict(claim, paper, verdict, f"{what} {est.text()}; {sides}; {_noise_text(c)}", fill)


def _undecided(claim, paper, fill, why) -> Verdict:
    return Verdict(claim, paper, UNDECIDED, why, fill)


def _at(c: Comparison, **where) -> pd.DataFrame:
    p = c.points
    for k, v in where.items():
        p = p[p[k] == v]
    return p


def _sides(*counts: tuple[str, int], unit: str = "run") -> str:
    return ", ".join(f"{name}: {n} {unit}{'s' if n != 1 else ''}" for name, n in counts)


def _data_size(df: pd.DataFrame):
    vit, resnet = one_factor_study(df, "train_size", "vit"), one_factor_study(df, "train_size", "resnet")
    common = sorted(set(vit["train_size"]) & set(resnet["train_size"]))
    return compare(pd.concat([vit, resnet])), common


def resnet_wins_on_small_data(df: pd.DataFrame) -> Verdict:
    claim, paper, fill = "ResNets beat ViTs on the smallest training sets", "Fig. 3, 4", "params/data_size.yaml"
    c, common = _data_size(df)
    if not common:
        return _undecided(claim, paper, fill, "no ViT and ResNet runs at a common training set size")
    n = common[0]
    res, vit = _at(c, model="resnet", train_size=n), _at(c, model="vit", train_size=n)
    weights = {k: 1 / len(res) for k in res["key"]} | {k: -1 / len(vit) for k in vit["key"]}
    return _judge(claim, paper, fill, c, weights, f"at {n:,} images, ResNet minus ViT test accuracy",
                  _sides(("ResNet", int(res["n"].sum())), ("ViT", int(vit["n"].sum()))))


def vit_gains_more_from_data(df: pd.DataFrame) -> Verdict:
    claim, paper = "ViT gains more than ResNet from more training data", "Fig. 3, 4"
    fill = "params/data_size.yaml"
    c, common = _data_size(df)
    if len(common) < 2:
        return _undecided(claim, paper, fill, "needs ViT and ResNet runs at two or more common training set sizes")
    small, large = common[0], common[-1]
    weights, counts = {}, []
    for model, sign in (("vit", 1), ("resnet", -1)):
        for size, direction in ((large, 1), (small, -1)):
            cell = _at(c, model=model, train_size=size)
            weights |= {k: sign * direction / len(cell) for k in cell["key"]}
            counts.append((f"{'ViT' if model == 'vit' else 'ResNet'} at {size:,}", int(cell["n"].sum())))
    return _judge(claim, paper, fill, c, weights,
                  f"from {small:,} to {large:,} images, the ViT's gain in test accuracy minus the ResNet's",
                  _sides(*counts))


def _frontiers(df: pd.DataFrame, families) -> tuple[Comparison, dict[str, pd.DataFrame]]:
    return frontiers(compute_group(df, families), families)


def vit_beats_resnet_at_equal_compute(df: pd.DataFrame) -> Verdict:
    claim, paper, fill = "At equal training compute ViT beats ResNet", "Fig. 5", "params/matched_compute.yaml"
    c, front = _frontiers(df, ("vit", "resnet"))
    gaps = frontier_gaps(front["vit"], front["resnet"])
    if not gaps:
        return _undecided(claim, paper, fill, "needs ViT and ResNet runs of several sizes over a shared compute range, "
                                              "on one dataset and training set size")
    return _judge(claim, paper, fill, c, mean_weights(gaps),
                  "ViT minus ResNet test accuracy at matched compute, averaged over the ViT frontier",
                  _sides(("ViT frontier", len(gaps)), ("ResNet frontier", len(front["resnet"])), unit="point") +
                  " (frontiers chosen on validation error)")


def hybrids_help_at_small_compute(df: pd.DataFrame) -> Verdict:
    claim = "Hybrids beat ViT at small compute, and the gap closes as compute grows"
    paper, fill = "Fig. 5", "params/matched_compute.yaml"
    c, front = _frontiers(df, ("vit", "hybrid"))
    gaps = frontier_gaps(front["vit"], front["hybrid"])
    if len(gaps) < 2:
        return _undecided(claim, paper, fill, "needs ViT and hybrid runs of several sizes over a shared compute range, "
                                              "on one dataset and training set size")
    # Both parts must hold: the hybrid ahead at the small end, and the ViT's advantage growing.
    hybrid_ahead = combine((gaps[0]["weights"], -1))
    growth = combine((gaps[-1]["weights"], 1), (gaps[0]["weights"], -1))
    small, change = c.contrast(hybrid_ahead), c.contrast(growth)
    sides = _sides(("ViT frontier", len(gaps)), ("hybrid frontier", len(front["hybrid"])), unit="point")
    if small is None or change is None:
        return _judge(claim, paper, fill, c, hybrid_ahead,
                      "hybrid minus ViT test accuracy at the smallest shared compute", sides)
    decided = (small.decided(), change.decided())
    verdict = SUPPORTED if decided == (1, 1) else CONTRADICTED if -1 in decided else UNDECIDED
    return Verdict(claim, paper, verdict,
                   f"hybrid minus ViT test accuracy at the smallest shared compute {small.text()}; change in the ViT's "
                   f"advantage from the smallest to the largest {change.text()}; {sides}; {_noise_text(c)}", fill)


def depth_helps_more_than_width(df: pd.DataFrame) -> Verdict:
    claim, paper, fill = "Scaling depth helps more than scaling width, per unit of compute", "App. D.2, Fig. 8", \
        "params/scaling_all.yaml"
    c, trends = direction_trends(df)
    for direction in ("depth", "width"):
        if direction not in trends:
            return _undecided(claim, paper, fill, f"needs ViT runs along the {direction} direction from a shared base")
    # width slope minus depth slope, in error per decade: positive when depth's error falls faster.
    weights = combine((trends["width"]["weights"], 1), (trends["depth"]["weights"], -1))
    slopes = {d: sum(cell.weight * cell.mean for cell in c.cells(trends[d]["weights"])) for d in ("depth", "width")}
    return _judge(claim, paper, fill, c, weights,
                  f"test error per 10x compute: depth {slopes['depth']:+.3f}, width {slopes['width']:+.3f}; "
                  "width minus depth",
                  _sides(("depth", trends["depth"]["points"]), ("width", trends["width"]["points"]), unit="point"))


def smaller_patches_help(df: pd.DataFrame) -> Verdict:
    claim, paper, fill = "Smaller patches give better accuracy", "App. D.2, Fig. 8", "params/patch_size.yaml"
    study = one_factor_study(df, "patch_size", "vit")
    if study.empty:
        return _undecided(claim, paper, fill, "no ViT runs that differ only in patch size")
    c = compare(study)
    small, large = study["patch_size"].min(), study["patch_size"].max()
    a, b = _at(c, patch_size=small), _at(c, patch_size=large)
    return _judge(claim, paper, fill, c, {a["key"].iloc[0]: 1.0, b["key"].iloc[0]: -1.0},
                  f"patch {small:.0f} minus patch {large:.0f} test accuracy",
                  _sides((f"patch {small:.0f}", int(a["n"].sum())), (f"patch {large:.0f}", int(b["n"].sum()))))


def position_embedding_helps(df: pd.DataFrame) -> Verdict:
    claim, paper, fill = "Any position embedding beats none", "Table 8, App. D.4", "params/pos_embed.yaml"
    study = one_factor_study(df, "pos_embed", "vit")
    if study.empty or "none" not in set(study["pos_embed"]):
        return _undecided(claim, paper, fill, "no ViT runs with and without a position embedding, otherwise equal")
    c = compare(study)
    some, none = c.points[c.points["pos_embed"] != "none"], _at(c, pos_embed="none")
    weights = {k: 1 / len(some) for k in some["key"]} | {none["key"].iloc[0]: -1.0}
    return _judge(claim, paper, fill, c, weights,
                  "mean over position-embedding variants minus none, test accuracy",
                  _sides(("with", int(some["n"].sum())), ("without", int(none["n"].sum()))))


CLAIMS = (resnet_wins_on_small_data, vit_gains_more_from_data, vit_beats_resnet_at_equal_compute,
          hybrids_help_at_small_compute, depth_helps_more_than_width, smaller_patches_help,
          position_embedding_helps)


def table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: the claim, where the paper makes it, the verdict, the evidence."""
    rows = [claim(df) for claim in CLAIMS]
    return pd.DataFrame([{"claim": v.claim, "paper": v.paper, "verdict": v.verdict,
                          "evidence": v.evidence if v.verdict != UNDECIDED or "interval" in v.evidence
                          else f"{v.evidence}; run {v.fill} to decide"} for v in rows])


def styled(frame: pd.DataFrame):
    """The claims table for the report: verdicts coloured, text left-aligned."""
    colours = {SUPPORTED: "#1a7f37", CONTRADICTED: "#cf222e", UNDECIDED: "#6e7781"}
    return (frame.style.hide(axis="index")
            .map(lambda v: f"color: {colours.get(v, 'inherit')}; font-weight: bold", subset=["verdict"])
            .set_properties(**{"text-align": "left"})
            .set_table_styles([{"selector": "th", "props": "text-align: left"}]))
