"""The paper's qualitative claims, each with the verdict a user's own runs support.

Every claim rests on one or more tests: contrasts of study points (seed means of test accuracy)
that are positive when the claim holds, each with a t interval from vitlab.report.stats (each point's
own seed variance plus the test set's sampling error, Welch-Satterthwaite df). The report's
tests (every claim's, the best scaling direction's, each position embedding against none) are
decided together under Holm's correction (`ledger`), so the chance that a report decides
anything falsely is at most 1 - stats.LEVEL. A claim is supported when all its tests are
decided on its side, contradicted when any is decided on the other, and otherwise there are
not enough runs: the verdict then says how many seeds would give stats.POWER. Families are
compared only on comparable runs (same dataset, image size, augmentation and budget), and a
frontier is chosen on half of each point's seeds and measured on the others.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd

from vitlab.report import stats
from vitlab.report.points import (Comparison, combine, compare, direction_trends, frontier_gaps, frontiers,
                                  mean_weights)
from vitlab.report.studies import CONFIG_FIELDS, comparable_groups, compute_group, differs, ok_runs, one_factor_study
from vitlab.run.families import label

SUPPORTED, CONTRADICTED, UNDECIDED, NOT_COMPARABLE = "supported", "contradicted", "not enough runs", "not comparable"


@dataclass
class Verdict:
    claim: str
    paper: str
    verdict: str
    evidence: str
    fill: str  # the params file whose runs decide it


@dataclass
class Test:
    """One decision the report makes: a contrast (weights on point accuracies) that is positive
    when the claim holds; its estimate, and the decision the ledger's correction gives it."""
    what: str
    weights: dict
    estimate: stats.Estimate | None = None
    decision: stats.Decision | None = None


@dataclass
class Finding:
    """A claim's tests on one comparison, or why none could be made."""
    claim: str
    paper: str
    fill: str
    comparison: Comparison | None = None
    tests: list[Test] = field(default_factory=list)
    sides: str = ""
    why: str = ""
    status: str = UNDECIDED  # the verdict when no test could be made
    detail: dict = field(default_factory=dict)  # what a section beside the claims table needs

    def testable(self) -> bool:
        return bool(self.tests) and all(t.estimate is not None for t in self.tests)


def _finding(claim, paper, fill, c: Comparison, tests: list[tuple[str, dict]], sides: str) -> Finding:
    made = [Test(what, weights, c.contrast(weights)) for what, weights in tests]
    return Finding(claim, paper, fill, c, made, sides)


def _at(c: Comparison, **where) -> pd.DataFrame:
    p = c.points
    for k, v in where.items():
        p = p[p[k] == v]
    return p


def _sides(*counts: tuple[str, int], unit: str = "run") -> str:
    return ", ".join(f"{name}: {n} {unit}{'s' if n != 1 else ''}" for name, n in counts)


def _scratch(df: pd.DataFrame) -> pd.DataFrame:
    runs = ok_runs(df)
    return runs[runs["pretrained"].isna()] if "pretrained" in runs else runs


# What the claims read of a record: each row selection copies every column, and a record holds
# dozens more (history, devices, notes).
READ = ("run_id", "status", *CONFIG_FIELDS, "val_accuracy", "test_accuracy", "train_flops", "test_correct")


class Studies:
    """A results table and the studies several findings share, each built once per report."""

    def __init__(self, df: pd.DataFrame):
        df = df[[c for c in READ if c in df]]
        # Text as Python objects: numpy takes rows of those several times faster than Arrow does
        # of pandas' default strings, and a report selects rows hundreds of times.
        self.df = df.astype({c: object for c in df.columns if pd.api.types.is_string_dtype(df[c])})

    @cached_property
    def data_size(self) -> tuple[Comparison, list] | tuple[str, str]:
        """The ViT and ResNet data-size studies within one comparable group: (comparison, common
        sizes), or (verdict, why) when there are none."""
        runs, best = _scratch(self.df), None
        for group in comparable_groups(runs):
            vit, resnet = one_factor_study(group, "train_size", "vit"), one_factor_study(group, "train_size", "resnet")
            common = sorted(set(vit["train_size"]) & set(resnet["train_size"]))
            if not vit.empty and not resnet.empty and (best is None or (len(common), len(group)) > best[0]):
                best = ((len(common), len(group)), vit, resnet, common)
        if best is None or not best[3]:
            vit, resnet = one_factor_study(runs, "train_size", "vit"), one_factor_study(runs, "train_size", "resnet")
            if best is None and not vit.empty and not resnet.empty:
                return NOT_COMPARABLE, f"the ViT and ResNet data-size studies differ in {differs(vit, resnet)}"
            return UNDECIDED, "no comparable ViT and ResNet runs at a common training set size"
        _, vit, resnet, common = best
        return compare(pd.concat([vit, resnet])), common

    @cached_property
    def trends(self):
        return direction_trends(self.df)


def _data_size(s: Studies, claim, paper, fill) -> tuple[Comparison, list] | Finding:
    first, second = s.data_size
    return (first, second) if isinstance(first, Comparison) else Finding(claim, paper, fill, why=second, status=first)


def resnet_wins_on_small_data(s: Studies) -> Finding:
    claim, paper, fill = "ResNets beat ViTs on the smallest training sets", "Fig. 3, 4", "params/data_size.yaml"
    if isinstance(study := _data_size(s, claim, paper, fill), Finding):
        return study
    c, common = study
    n = common[0]
    res, vit = _at(c, model="resnet", train_size=n), _at(c, model="vit", train_size=n)
    weights = {k: 1 / len(res) for k in res["key"]} | {k: -1 / len(vit) for k in vit["key"]}
    return _finding(claim, paper, fill, c, [(f"at {n:,} images, ResNet minus ViT test accuracy", weights)],
                    _sides(("ResNet", int(res["seeds"].sum())), ("ViT", int(vit["seeds"].sum()))))


def vit_gains_more_from_data(s: Studies) -> Finding:
    claim, paper, fill = "ViT gains more than ResNet from more training data", "Fig. 3, 4", "params/data_size.yaml"
    if isinstance(study := _data_size(s, claim, paper, fill), Finding):
        return study
    c, common = study
    if len(common) < 2:
        return Finding(claim, paper, fill, why="needs ViT and ResNet runs at two or more common training set sizes")
    small, large = common[0], common[-1]
    weights, counts = {}, []
    for model, sign in (("vit", 1), ("resnet", -1)):
        for size, direction in ((large, 1), (small, -1)):
            cell = _at(c, model=model, train_size=size)
            weights |= {k: sign * direction / len(cell) for k in cell["key"]}
            counts.append((f"{label(model)} at {size:,}", int(cell["seeds"].sum())))
    return _finding(claim, paper, fill, c, [(f"from {small:,} to {large:,} images, the ViT's gain in test accuracy "
                                             "minus the ResNet's", weights)], _sides(*counts))


def _frontier_study(s: Studies, families, claim, paper, fill, least: int):
    """Both families' frontiers on one comparable compute group, and the gaps of the first's
    points to the second's frontier: (comparison, fronts, gaps, sides), or a Finding saying why not."""
    group = compute_group(s.df, families)
    c, front = frontiers(group, families)
    gaps = frontier_gaps(front[families[0]], front[families[1]])
    if len(gaps) < least:
        runs = _scratch(s.df)
        a, b = (runs[runs["model"] == m] for m in families)
        if not a.empty and not b.empty and not any(set(g["model"]) >= set(families) for g in comparable_groups(runs)):
            return Finding(claim, paper, fill, why=f"the {label(families[0])} and {label(families[1])} runs differ in "
                                                   f"{differs(a, b, tuple(label(m) for m in families))}",
                           status=NOT_COMPARABLE)
        return Finding(claim, paper, fill, why=f"needs {label(families[0])} and {label(families[1])} runs of several "
                                               "sizes over a shared compute range, on one dataset and training set size")
    points = c.points
    sides = ", ".join(f"{label(m)} frontier: {len(front[m])} of {int((points['model'] == m).sum())} candidate points"
                      for m in families)
    return c, front, gaps, (f"{sides} (chosen on validation of the first half of each point's seeds, measured on "
                            "the test accuracy of the others)")


def vit_beats_resnet_at_equal_compute(s: Studies) -> Finding:
    claim, paper, fill = "At equal training compute ViT beats ResNet", "Fig. 5", "params/matched_compute.yaml"
    study = _frontier_study(s, ("vit", "resnet"), claim, paper, fill, 1)
    if isinstance(study, Finding):
        return study
    c, _, gaps, sides = study
    return _finding(claim, paper, fill, c, [("ViT minus ResNet test accuracy at matched compute, averaged over the "
                                             "ViT frontier", mean_weights(gaps))], sides)


def hybrids_help_at_small_compute(s: Studies) -> Finding:
    claim = "Hybrids beat ViT at small compute, and the gap closes as compute grows"
    paper, fill = "Fig. 5", "params/matched_compute.yaml"
    study = _frontier_study(s, ("vit", "hybrid"), claim, paper, fill, 2)
    if isinstance(study, Finding):
        return study
    c, _, gaps, sides = study
    # Both parts must hold: the hybrid ahead at the small end, and the ViT's advantage growing.
    return _finding(claim, paper, fill, c, [
        ("hybrid minus ViT test accuracy at the smallest shared compute", combine((gaps[0]["weights"], -1))),
        ("change in the ViT's advantage from the smallest to the largest",
         combine((gaps[-1]["weights"], 1), (gaps[0]["weights"], -1)))], sides)


def depth_helps_more_than_width(s: Studies) -> Finding:
    claim, paper, fill = ("Scaling depth helps more than scaling width, per unit of compute", "App. D.2, Fig. 8",
                          "params/scaling_all.yaml")
    c, trends = s.trends
    for direction in ("depth", "width"):
        if direction not in trends:
            return Finding(claim, paper, fill, why=f"needs ViT runs along the {direction} direction from a shared base")
    # width slope minus depth slope, in error per decade: positive when depth's error falls faster.
    weights = combine((trends["width"]["weights"], 1), (trends["depth"]["weights"], -1))
    slopes = {d: sum(cell.weight * cell.mean for cell in c.cells(trends[d]["weights"])) for d in ("depth", "width")}
    return _finding(claim, paper, fill, c, [(f"test error per 10x compute: depth {slopes['depth']:+.3f}, width "
                                             f"{slopes['width']:+.3f}; width minus depth", weights)],
                    _sides(("depth", trends["depth"]["points"]), ("width", trends["width"]["points"]), unit="point"))


def best_direction(s: Studies) -> Finding:
    """Not a claim of the paper but a decision the report makes: that the scaling direction
    whose error falls fastest per 10x compute beats the runner-up."""
    claim, paper, fill = "The best scaling direction for more compute", "App. D.2", "params/scaling_all.yaml"
    c, trends = s.trends
    if len(trends) < 2:
        return Finding(claim, paper, fill, why="needs ViT runs along two or more scaling directions from a shared base")
    slope = {d: sum(cell.weight * cell.mean for cell in c.cells(t["weights"])) for d, t in trends.items()}
    best, second = sorted(slope, key=slope.get)[:2]
    finding = _finding(claim, paper, fill, c, [(f"{second}'s slope minus {best}'s",
                                                combine((trends[second]["weights"], 1), (trends[best]["weights"], -1)))],
                       _sides(*((d, t["points"]) for d, t in trends.items()), unit="point"))
    finding.detail = {"trends": trends, "ranked": (best, second)}
    return finding


def position_embedding_helps(s: Studies) -> Finding:
    claim, paper, fill = "Any position embedding beats none", "Table 8, App. D.4", "params/pos_embed.yaml"
    study = one_factor_study(s.df, "pos_embed", "vit")
    if study.empty or "none" not in set(study["pos_embed"]):
        return Finding(claim, paper, fill, why="no ViT runs with and without a position embedding, otherwise equal")
    c = compare(study)
    none = _at(c, pos_embed="none")
    some = c.points[c.points["pos_embed"] != "none"].sort_values("pos_embed")
    # Each variant against none: the mean of the variants would let one bad variant hide.
    tests = [(f"{row.pos_embed} minus none, test accuracy", {row.key: 1.0, none["key"].iloc[0]: -1.0})
             for row in some.itertuples()]
    return _finding(claim, paper, fill, c, tests, _sides(*((v, int(n)) for v, n in zip(c.points["pos_embed"],
                                                                                          c.points["seeds"]))))


def smaller_patches_help(s: Studies) -> Finding:
    claim, paper, fill = "Smaller patches give better accuracy", "App. D.2, Fig. 8", "params/patch_size.yaml"
    study = one_factor_study(s.df, "patch_size", "vit")
    if study.empty:
        return Finding(claim, paper, fill, why="no ViT runs that differ only in patch size")
    c = compare(study)
    small, large = study["patch_size"].min(), study["patch_size"].max()
    a, b = _at(c, patch_size=small), _at(c, patch_size=large)
    return _finding(claim, paper, fill, c, [(f"patch {small:.0f} minus patch {large:.0f} test accuracy",
                                             {a["key"].iloc[0]: 1.0, b["key"].iloc[0]: -1.0})],
                    _sides((f"patch {small:.0f}", int(a["seeds"].sum())), (f"patch {large:.0f}", int(b["seeds"].sum()))))


CLAIMS = (resnet_wins_on_small_data, vit_gains_more_from_data, vit_beats_resnet_at_equal_compute,
          hybrids_help_at_small_compute, depth_helps_more_than_width, smaller_patches_help,
          position_embedding_helps)
# Decisions the report makes beside the claims, counted in the same correction.
OTHER = (best_direction,)


@dataclass
class Ledger:
    """Every decision of one report, corrected together: the claims' findings and the others'."""
    findings: list[Finding]  # the claims', in the claims table's order
    tests: int  # how many tests the correction counted
    named: dict[str, Finding]  # every finding by the name of the function that made it

    def __getitem__(self, fn) -> Finding:
        return self.named[fn.__name__]

    @property
    def alpha(self) -> float:
        """The per-test error level that plans seeds: Holm's strictest step, (1 - LEVEL) / tests."""
        return (1 - stats.LEVEL) / max(self.tests, 1)

    def verdicts(self) -> list[Verdict]:
        return [self.verdict(f) for f in self.findings]

    def table(self) -> pd.DataFrame:
        """One row per claim: the claim, where the paper makes it, the verdict, the evidence."""
        return pd.DataFrame([vars(v) for v in self.verdicts()]).drop(columns="fill")

    def verdict(self, f: Finding) -> Verdict:
        if not f.tests:
            return Verdict(f.claim, f.paper, f.status, f"{f.why}; run {f.fill} to decide", f.fill)
        c = f.comparison
        if not f.testable():
            unrepeated = {k for t in f.tests for k in c.unrepeated(t.weights)}
            values = "; ".join(f"{t.what} {sum(x.weight * x.mean for x in c.cells(t.weights)):+.3f}" for t in f.tests)
            return Verdict(f.claim, f.paper, UNDECIDED,
                           f"{values}; {f.sides}; but {len(unrepeated)} of its points were run with one seed, so their "
                           f"seed variance is unknown; {self.seeds_text(f)}", f.fill)
        signs = [t.decision.decided for t in f.tests]
        verdict = SUPPORTED if all(s == 1 for s in signs) else CONTRADICTED if -1 in signs else UNDECIDED
        evidence = "; ".join(f"{t.what} {t.estimate.text(t.decision.level)}" for t in f.tests)
        evidence += f"; {f.sides}; {c.noise_text(combine(*((t.weights, 1) for t in f.tests)))}"
        if verdict == UNDECIDED:
            evidence += f"; {self.seeds_text(f)}"
        return Verdict(f.claim, f.paper, verdict, evidence, f.fill)

    def seeds_text(self, f: Finding) -> str:
        """How many seeds per configuration would give the undecided tests stats.POWER."""
        needs = [f.comparison.seeds_needed(t.weights, self.alpha) for t in f.tests
                 if t.decision is None or not t.decision.decided]
        low = max((n[0] for n in needs), key=lambda n: n or stats.MAX_SEEDS + 1)
        high = max((n[1] for n in needs), key=lambda n: n or stats.MAX_SEEDS + 1)
        power = f"{stats.POWER:.0%} power at the report's error level ({self.alpha:.2g} per test)"
        if low is None:
            return f"no number of seeds up to {stats.MAX_SEEDS} would give {power} for a difference this small"
        if low == high:
            return f"{low} seeds per configuration would give {power} for a difference this large"
        lo_sd, hi_sd = stats.ASSUMED_SEED_SD
        return (f"{low} to {high if high else f'more than {stats.MAX_SEEDS}'} seeds per configuration would give "
                f"{power} for a difference this large, if seeds vary {lo_sd:g} to {hi_sd:g} times the test set's "
                "sampling sd")

    def note(self) -> str:
        return (f"Decided together with Holm's correction over the report's {self.tests} tests (each claim's, the best "
                f"scaling direction's, each position embedding against none), so the chance that this report decides "
                f"any of them falsely is at most {1 - stats.LEVEL:.0%}; each interval is at the level its decision "
                "used, and a claim supported or contradicted holds at that level.")


def ledger(df: pd.DataFrame, claims=CLAIMS, others=OTHER) -> Ledger:
    """Every finding of the report on df, its tests decided under one Holm correction."""
    studies = Studies(df)
    named = {fn.__name__: fn(studies) for fn in (*claims, *others)}
    tests = [t for f in named.values() if f.testable() for t in f.tests]
    for t, decision in zip(tests, stats.holm([t.estimate for t in tests])):
        t.decision = decision
    return Ledger([named[fn.__name__] for fn in claims], len(tests), named)


def verdict(claim, df: pd.DataFrame) -> Verdict:
    """One claim decided alone (its own tests corrected together), as a notebook cell or test asks."""
    return ledger(df, (claim,), ()).verdicts()[0]


def table(df: pd.DataFrame) -> pd.DataFrame:
    """The claims table of the report on df (Ledger.table)."""
    return ledger(df).table()


def styled(frame: pd.DataFrame):
    """The claims table for the report: verdicts coloured, text left-aligned."""
    colours = {SUPPORTED: "#1a7f37", CONTRADICTED: "#cf222e", UNDECIDED: "#6e7781", NOT_COMPARABLE: "#9a6700"}
    return (frame.style.hide(axis="index")
            .map(lambda v: f"color: {colours.get(v, 'inherit')}; font-weight: bold", subset=["verdict"])
            .set_properties(**{"text-align": "left"})
            .set_table_styles([{"selector": "th", "props": "text-align: left"}]))
