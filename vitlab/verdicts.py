"""The paper's qualitative claims, each with the verdict a user's own runs support.

Every verdict rests on a difference with a 95% interval: from the spread over seeds
(bootstrap of the means) when each side has at least two runs, otherwise from the
test-set sampling error of the accuracies (binomial). A claim is supported when the
interval lies on the claimed side of zero, contradicted when it lies on the other, and
otherwise there are not enough runs to tell.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vitlab import data, scaling
from vitlab.studies import ok_runs, one_factor_study, scaling_directions

SUPPORTED, CONTRADICTED, UNDECIDED = "supported", "contradicted", "not enough runs"
Z95 = 1.96


@dataclass
class Verdict:
    claim: str
    paper: str
    verdict: str
    evidence: str
    fill: str  # the params file whose runs decide it


@dataclass
class Difference:
    value: float
    low: float
    high: float
    basis: str

    def text(self) -> str:
        return f"{self.value:+.3f} (95% interval {self.low:+.3f} to {self.high:+.3f}; {self.basis})"

    def verdict(self) -> str:
        return SUPPORTED if self.low > 0 else CONTRADICTED if self.high < 0 else UNDECIDED


def difference(a: pd.Series, b: pd.Series, test_size: int, seed: int = 0) -> Difference:
    """mean(a) - mean(b) of two sets of accuracies, with its 95% interval."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    value = a.mean() - b.mean()
    if len(a) >= 2 and len(b) >= 2:
        rng = np.random.default_rng(seed)
        draws = rng.choice(a, (2000, len(a))).mean(1) - rng.choice(b, (2000, len(b))).mean(1)
        low, high = np.percentile(draws, [2.5, 97.5])
        return Difference(value, low, high, f"{len(a)} and {len(b)} runs, spread over seeds")
    pa, pb = a.mean(), b.mean()
    se = np.sqrt(pa * (1 - pa) / (test_size * len(a)) + pb * (1 - pb) / (test_size * len(b)))
    return Difference(value, value - Z95 * se, value + Z95 * se,
                      f"one seed, so test-set sampling error only ({test_size} test images)")


def _test_size(runs: pd.DataFrame) -> int:
    return data.spec(runs["dataset"].iloc[0]).test_size


def _undecided(claim, paper, fill, why) -> Verdict:
    return Verdict(claim, paper, UNDECIDED, why, fill)


def resnet_wins_on_small_data(df: pd.DataFrame) -> Verdict:
    claim, paper, fill = "ResNets beat ViTs on the smallest training sets", "Fig. 3, 4", "params/data_size.yaml"
    vit, resnet = one_factor_study(df, "train_size", "vit"), one_factor_study(df, "train_size", "resnet")
    common = sorted(set(vit["train_size"]) & set(resnet["train_size"]))
    if not common:
        return _undecided(claim, paper, fill, "no ViT and ResNet runs at a common training set size")
    n = common[0]
    d = difference(resnet[resnet["train_size"] == n]["test_accuracy"], vit[vit["train_size"] == n]["test_accuracy"],
                   _test_size(vit))
    return Verdict(claim, paper, d.verdict(), f"at {n:,} images, ResNet minus ViT test accuracy {d.text()}", fill)


def vit_gains_more_from_data(df: pd.DataFrame) -> Verdict:
    claim, paper = "ViT gains more than ResNet from more training data", "Fig. 3, 4"
    fill = "params/data_size.yaml"
    vit, resnet = one_factor_study(df, "train_size", "vit"), one_factor_study(df, "train_size", "resnet")
    common = sorted(set(vit["train_size"]) & set(resnet["train_size"]))
    if len(common) < 2:
        return _undecided(claim, paper, fill, "needs ViT and ResNet runs at two or more common training set sizes")
    small, large = common[0], common[-1]
    gain = {}
    for name, runs in (("vit", vit), ("resnet", resnet)):
        gain[name] = (runs[runs["train_size"] == large]["test_accuracy"].to_numpy(),
                      runs[runs["train_size"] == small]["test_accuracy"].to_numpy())
    # The ViT's gain minus the ResNet's; with seeds, paired by resampling each side.
    d_vit = difference(gain["vit"][0], gain["vit"][1], _test_size(vit))
    d_res = difference(gain["resnet"][0], gain["resnet"][1], _test_size(vit))
    value = d_vit.value - d_res.value
    half = np.hypot(d_vit.high - d_vit.value, d_res.high - d_res.value)
    d = Difference(value, value - half, value + half, d_vit.basis)
    return Verdict(claim, paper, d.verdict(),
                   f"from {small:,} to {large:,} images ViT gains {d_vit.value:+.3f}, ResNet {d_res.value:+.3f}; "
                   f"difference {d.text()}", fill)


def _frontier(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[scaling.pareto_frontier(runs["train_flops"], runs["test_error"])].sort_values("train_flops")


def _frontier_gap(df: pd.DataFrame, better: str, worse: str):
    """Error of `worse`'s frontier minus `better`'s at each of `better`'s frontier runs inside
    `worse`'s compute range (log-linear interpolation)."""
    runs = ok_runs(df)
    a, b = _frontier(runs[runs["model"] == better]), _frontier(runs[runs["model"] == worse])
    if len(a) < 1 or len(b) < 2:
        return None
    inside = a[(a["train_flops"] >= b["train_flops"].min()) & (a["train_flops"] <= b["train_flops"].max())]
    if inside.empty:
        return None
    other = np.interp(np.log10(inside["train_flops"]), np.log10(b["train_flops"]), b["test_error"])
    return inside.assign(gap=other - inside["test_error"].to_numpy())


def vit_beats_resnet_at_equal_compute(df: pd.DataFrame) -> Verdict:
    claim, paper, fill = "At equal training compute ViT beats ResNet", "Fig. 5", "params/matched_compute.yaml"
    gap = _frontier_gap(df, "vit", "resnet")
    if gap is None:
        return _undecided(claim, paper, fill, "needs ViT and ResNet runs of several sizes over a shared compute range")
    n = _test_size(gap)
    se = np.sqrt((gap["test_error"] * (1 - gap["test_error"]) * 2 / n).mean() / len(gap))
    d = Difference(gap["gap"].mean(), gap["gap"].mean() - Z95 * se, gap["gap"].mean() + Z95 * se,
                   f"{len(gap)} ViT frontier runs against the ResNet frontier")
    return Verdict(claim, paper, d.verdict(), f"ResNet minus ViT test error at matched compute {d.text()}", fill)


def hybrids_help_at_small_compute(df: pd.DataFrame) -> Verdict:
    claim = "Hybrids beat ViT at small compute, and the gap closes as compute grows"
    paper, fill = "Fig. 5", "params/matched_compute.yaml"
    gap = _frontier_gap(df, "vit", "hybrid")
    if gap is None or len(gap) < 2:
        return _undecided(claim, paper, fill, "needs ViT and hybrid runs of several sizes over a shared compute range")
    # gap > 0: the ViT is better. The claim: negative at the small end, rising with compute.
    small, large = gap["gap"].iloc[0], gap["gap"].iloc[-1]
    n = _test_size(gap)
    se = np.sqrt(2 * 0.25 / n)  # the largest binomial error of one point
    d = Difference(large - small, large - small - Z95 * np.sqrt(2) * se, large - small + Z95 * np.sqrt(2) * se,
                   "ViT frontier runs against the hybrid frontier, test-set sampling error")
    verdict = d.verdict() if small < 0 else CONTRADICTED
    return Verdict(claim, paper, verdict,
                   f"ViT minus hybrid test error {-small:+.3f} at the smallest shared compute and {-large:+.3f} at "
                   f"the largest; change in the ViT's advantage {d.text()}", fill)


def depth_helps_more_than_width(df: pd.DataFrame) -> Verdict:
    claim, paper, fill = "Scaling depth helps more than scaling width, per unit of compute", "App. D.2, Fig. 8", \
        "params/scaling_all.yaml"
    runs = scaling_directions(df)
    trends = {}
    for direction in ("depth", "width"):
        part = runs[runs["direction"] == direction] if not runs.empty else runs
        if part["train_flops"].nunique() < 2:
            return _undecided(claim, paper, fill, f"needs ViT runs along the {direction} direction from a shared base")
        trends[direction] = scaling.trend_per_decade(part["train_flops"], part["test_error"])
    depth, width = trends["depth"], trends["width"]
    value = width.slope - depth.slope
    half = np.hypot(depth.interval[1] - depth.interval[0], width.interval[1] - width.interval[0]) / 2
    d = Difference(value, value - half, value + half, "bootstrap over runs of each direction")
    return Verdict(claim, paper, d.verdict(),
                   f"test error per 10x compute: depth {depth.slope:+.3f}, width {width.slope:+.3f}; "
                   f"width minus depth {d.text()}", fill)


def smaller_patches_help(df: pd.DataFrame) -> Verdict:
    claim, paper, fill = "Smaller patches give better accuracy", "App. D.2, Fig. 8", "params/patch_size.yaml"
    study = one_factor_study(df, "patch_size", "vit")
    if study.empty:
        return _undecided(claim, paper, fill, "no ViT runs that differ only in patch size")
    small, large = study["patch_size"].min(), study["patch_size"].max()
    d = difference(study[study["patch_size"] == small]["test_accuracy"],
                   study[study["patch_size"] == large]["test_accuracy"], _test_size(study))
    return Verdict(claim, paper, d.verdict(),
                   f"patch {small:.0f} minus patch {large:.0f} test accuracy {d.text()}", fill)


def position_embedding_helps(df: pd.DataFrame) -> Verdict:
    claim, paper, fill = "Any position embedding beats none", "Table 8, App. D.4", "params/pos_embed.yaml"
    study = one_factor_study(df, "pos_embed", "vit")
    if study.empty or "none" not in set(study["pos_embed"]):
        return _undecided(claim, paper, fill, "no ViT runs with and without a position embedding, otherwise equal")
    d = difference(study[study["pos_embed"] != "none"]["test_accuracy"],
                   study[study["pos_embed"] == "none"]["test_accuracy"], _test_size(study))
    return Verdict(claim, paper, d.verdict(), f"with minus without a position embedding, test accuracy {d.text()}",
                   fill)


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
