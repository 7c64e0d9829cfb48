"""Report and notebook sections that are more than one figure or table: paragraphs that state
what the runs say (with their intervals), and the looks inside trained models."""
from __future__ import annotations

import datetime
import platform
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown

from vitlab import __version__
from vitlab.report import claims, inside, shape
from vitlab.report.figures import (Missing, attention_distance_by_depth, attention_rollout_overlay, embedding_filters,
                                   position_similarity_grid)
from vitlab.report.crossing import Crossover
from vitlab.report.studies import ok_runs, one_factor_study, two_factor_study
from vitlab.run.families import label
from vitlab.study import results

LIBRARIES = ("torch", "timm", "accelerate", "papermill", "pandas")
POOLS = {"token": "class token", "avg": "global average pooling"}


def coverage(results_dir: str | Path, records) -> str:
    """What a report covers, as Markdown: its params files, runs, versions, devices and date."""
    params = results.kept_params(results_dir)
    days = sorted({d[:10] for d in records["finished_at"].dropna()}) if len(records) else []
    status = records["status"].value_counts() if len(records) else {}
    runs = ", ".join(f"{n} {k}" for k, n in status.items()) or "none"
    devices = ", ".join(sorted(records["device"].dropna().unique())) if len(records) else "none"
    libraries = ", ".join(f"{name} {version(name)}" for name in LIBRARIES)
    bad = results.damaged(results_dir)
    rows = [("results", f"`{Path(results_dir)}`"),
            ("params files", ", ".join(f"`{p}`" for p in params) or "none kept here (a sweep keeps a copy in params/)"),
            ("runs", f"{len(records)} ({runs})" + (f", finished {' to '.join(dict.fromkeys([days[0], days[-1]]))}"
                                                    if days else "")),
            *([("left out", "; ".join(f"`runs/{p.name}`: {problem}" for p, problem in bad)
                 + " (not readable as records; a sweep sets such a file aside and trains its run again)")]
              if bad else []),
            ("devices", devices), ("software", f"vitlab {__version__}, Python {platform.python_version()}, {libraries}"),
            ("rendered", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))]
    return "\n".join(["| | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)])



def summary(df: pd.DataFrame) -> str:
    """A markdown paragraph: how many runs, by status, and which failed and why."""
    if df.empty:
        return "**No runs recorded yet.** Run a sweep first: `vitlab sweep params/quickstart.yaml`."
    counts = df["status"].value_counts()
    lines = [f"**{len(df)} runs**: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + "."]
    bad = df[df["status"] != "ok"]
    if not bad.empty:
        lines.append("Runs that did not finish are left out of the figures:")
        lines += [f"- `{r.run_id}` ({r.model}, {r.status}): {r.error}" for r in bad.itertuples()]
    return "\n".join(lines)




def data_size_reading(df: pd.DataFrame) -> str:
    """What these runs show across training set sizes, beside what the paper found: each size's
    families in order of mean test accuracy over seeds, and where the ViT's mean passes the
    ResNet's (means only: the claims table above decides, with intervals)."""
    studies = [one_factor_study(df, "train_size", m) for m in sorted(ok_runs(df)["model"].unique())]
    data = pd.concat([s for s in studies if not s.empty]) if any(not s.empty for s in studies) else None
    if data is None or data["model"].nunique() < 2:
        return ""
    means = data.groupby(["train_size", "model"])["test_accuracy"].mean().unstack()
    lines = ["What these runs show (mean test accuracy over seeds; the claims table above gives the intervals):"]
    for size, row in means.iterrows():
        ranked = row.dropna().sort_values(ascending=False)
        lines.append(f"- at {size:,} images: " + " > ".join(f"{label(m)} {a:.3f}" for m, a in ranked.items()))
    if {"vit", "resnet"} <= set(means):
        gap = (means["vit"] - means["resnet"]).dropna()
        ahead = gap > 0
        if ahead.all() or not ahead.any():
            # A blank line first: a paragraph, not part of the list's last item.
            lines.append(f"\nThe {'ViT' if ahead.all() else 'ResNet'}'s mean is above the "
                         f"{'ResNet' if ahead.all() else 'ViT'}'s at every size run here.")
        else:
            changes = [f"between {a:,} and {b:,} images" for (a, x), (b, y) in zip(gap.items(), list(gap.items())[1:])
                       if (x > 0) != (y > 0)]
            lines.append("\nThe ViT's mean crosses the ResNet's " + ", and again ".join(changes) + ".")
    return "\n".join(lines)


def claims_reading(ledger: claims.Ledger, *findings) -> str:
    """What these runs show on the claims a figure bears on: each claim's verdict and its main
    estimate, as the claims table decides them (under the report's correction). Claims without
    runs to test them are left to the section's own note of what would fill it."""
    tested = [ledger.verdict(ledger[fn]) for fn in findings if ledger[fn].tests]
    if not tested:
        return ""
    return "\n".join(["What these runs show (the claims table above gives the whole evidence):",
                      *(f"- {v.claim}: **{v.verdict}** ({v.evidence.split('; ')[0]})" for v in tested)])


# The claim each crossing bears on: a ViT whose fitted error falls below the other family's inside
# the values run agrees with the claim supported, and one overtaken there with it contradicted.
CROSSING_CLAIMS = {("train_size", "resnet"): claims.vit_gains_more_from_data,
                   ("train_flops", "resnet"): claims.vit_beats_resnet_at_equal_compute,
                   ("train_flops", "hybrid"): claims.hybrids_help_at_small_compute}


def crossover_reading(crossed: list[tuple[str, str, Crossover]], ledger: claims.Ledger,
                      axis: str = "train_size") -> str:
    """Where the fitted laws of test error against training images or compute cross (crossed:
    crossing.crossings(df, axis)), each with its interval; a crossing inside the runs whose
    direction the claims table decides the other way says so, so the two are never read as
    contradicting."""
    lines = []
    for first, second, found in crossed:
        vit_first, other = first == "vit", second if first == "vit" else first
        theirs = f"the {label(second)}'s"
        line = f"- the {label(first)}'s error {found.text(theirs)}"
        if (claim := CROSSING_CLAIMS.get((axis, other))) and found.inside():
            verdict = ledger.verdict(ledger[claim])
            if verdict.verdict == (claims.CONTRADICTED if vit_first else claims.SUPPORTED):
                line += (f"; these are fitted laws, and the claims table, which tests the runs themselves, finds "
                         f"\"{verdict.claim}\" {verdict.verdict}")
        lines.append(line)
    if not lines:
        return ""
    what = ("training images, as under Scaling laws below" if axis == "train_size" else
            "training compute, each fitted to its family's best configuration on validation at each compute run")
    intro = (f"Where the fitted laws cross (saturating power laws of test error against {what}; the interval counts "
             "both fits' noise, form and back-tested misfit):")
    return "\n".join([intro, *lines])


def pooling_reading(df: pd.DataFrame) -> str:
    """What these runs show on class token vs average pooling: each head at its own best learning
    rate (chosen on validation), with its mean test accuracy over seeds there."""
    study = two_factor_study(df, "pool", "lr", "vit")
    if study.empty or study["pool"].nunique() < 2:
        return ""
    means = study.groupby(["pool", "lr"])[["val_accuracy", "test_accuracy"]].mean()
    lines = ["What these runs show (each head at the learning rate best on validation; mean test accuracy over seeds):"]
    for pool, group in means.groupby(level="pool"):
        (_, lr), row = next(iter(group.sort_values("val_accuracy", ascending=False).iterrows()))
        lines.append(f"- {POOLS.get(pool, pool)}: {row['test_accuracy']:.3f} at learning rate {lr:g}")
    return "\n".join(lines)


def recommendation(led: claims.Ledger) -> str:
    """Which scaling direction the runs favour per unit of compute, as a markdown paragraph; the
    decision is one of the report's tests (the ledger's), under its correction."""
    finding = led[claims.best_direction]
    if not finding.tests:
        return ("*Not enough runs to compare scaling directions: run params/scaling_all.yaml "
                "(depth, width, MLP size and patch size from one base).*")
    trends, (best, second) = finding.detail["trends"], finding.detail["ranked"]
    c, test = finding.comparison, finding.tests[0]
    slopes = {d: c.contrast(t["weights"]) for d, t in trends.items()}  # test error per decade
    if not finding.testable():
        return (f"*Some configurations along the scaling directions were run with one seed, so the trends have no "
                f"interval; {led.seeds_text(finding)}.*")
    lines = [f"- **{d}**: test error {slopes[d].text()} per 10x compute; {trends[d]['points']} configurations"
             for d in sorted(slopes, key=lambda d: slopes[d].value)]
    clear = test.decision.decided == 1  # the runner-up's slope minus the best's is above zero
    budget = c.points["train_flops"].max() * 10
    return (f"For more compute (say 10x the largest run here, {budget:.2g} FLOPs), the runs favour scaling **{best}**"
            + (f": its error falls faster than {second}'s, {test.estimate.text(test.decision.level)}, decided under "
               "the report's correction" if clear else
               f", though not clearly ahead of {second} ({test.estimate.text(test.decision.level)}, under the report's "
               f"correction; {led.seeds_text(finding)})")
            + f"; {c.noise_text(test.weights)}. Each direction's trend on its own:\n\n" + "\n".join(lines))


def _value(name: str, value: float) -> str:
    """A dimension's value as the reading prints it: depth to a tenth, sizes whole; the open ends
    of an interval in words."""
    if value == 0:
        return "0"
    if not np.isfinite(value):
        return "no end"
    return f"{value:.1f}" if name == "depth" else f"{value:,.0f}"


def shape_reading(found: shape.Star | None, budget: float | None = None) -> str:
    """The compute-optimal shape from a star sweep (shape.star), as Markdown: each dimension's
    exponent and its value at the budget (default 10x the largest run), with 95% intervals, and how
    their order compares with SoViT's."""
    if found is None:
        return ("*No star sweep among these runs: run params/shape.yaml (a centre ViT, and each of width, depth and "
                "MLP size shrunk alone, at several step budgets) to fill this section.*")
    budget = budget or shape.BUDGET_FACTOR * found.largest_flops
    c = found.centre
    head = (f"A star sweep around a ViT of depth {c['depth']}, width {c['width']} ({c['heads']} heads) and MLP size "
            f"{c['mlp_dim']}; the largest run trained on {found.largest_flops:.3g} FLOPs. At {budget:.3g} FLOPs"
            f"{' (10x that)' if budget == shape.BUDGET_FACTOR * found.largest_flops else ''}, by each dimension's law:")
    lines, fitted = [], {}
    for name, law in found.laws.items():
        if isinstance(law, str):
            lines.append(f"- **{name}**: no law fitted ({law})")
            continue
        values = ", ".join(f"{v:,.0f}" for v in sorted(found.arms[name][shape.DIMENSIONS[name]].unique()))
        low, high = law.exponent_interval()
        x, x_low, x_high = law.optimal(budget), *law.optimal_interval(budget)
        exponent = f"{low:.2f} to {high:.2f}" if np.isfinite(high) else f"above {low:.2f}"
        interval = f"95% interval {_value(name, x_low)} to {_value(name, x_high)}"
        if 0 < x < np.inf:
            fitted[name] = law
            beyond = (" (below the values run: the law's extrapolation)" if x < law.x_range[0] * 0.95 else
                      " (beyond the values run: the law's extrapolation)" if x > law.x_range[1] * 1.05 else "")
            line = (f"- **{name}** ({values} run): {_value(name, x)} ({interval}){beyond}; it grows as compute^s "
                    f"with s = {law.exponent:.2f} (95% interval {exponent})")
        else:  # the point fit has no trade-off: alpha = 0 (shrinking costs nothing) or beta = 0 (growing does not)
            side = "shrinking it: its optimum lies below the values run" if x == 0 else \
                "growing it: its optimum lies beyond any value run"
            line = (f"- **{name}** ({values} run): no value recommended; the fit finds no cost of {side} "
                    f"(the optimum at this budget: {interval}; 95% interval of its exponent: s {exponent})")
        line += f"; noise {law.noise}"
        if law.interior() < shape.LEVEL:
            line += (f". Only {law.interior():.0%} of its refits find a cost on both sides of the optimum, so these "
                     "runs do not show where this dimension stops paying")
        lines.append(line + ".")
    ordered = sorted(fitted, key=lambda n: -fitted[n].exponent)
    pairs = []
    for faster, slower in zip(ordered, ordered[1:]):
        apart = fitted[faster].exponent_interval()[0] > fitted[slower].exponent_interval()[1]
        pairs.append(f"{faster} {'faster than' if apart else 'and'} {slower}"
                     + ("" if apart else " (their exponents' intervals overlap)"))
    order = (f" Here the point estimates order them {', then '.join(ordered)}: " + "; ".join(pairs) + "."
             if len(ordered) > 1 else " These runs do not order the dimensions: fewer than two laws have an optimum.")
    tail = ("\n\nSoViT found the MLP size should grow fastest with compute, then depth, then width." + order
            + " Each law holds the other two dimensions at the centre and is not back-tested: a recommendation "
            "beyond the budgets run is the law's extrapolation.")
    return "\n".join([head, *lines]) + tail


# Figures of one trained model's insides, as the inspect notebook and the report show them:
# each a figure, or a Missing note where the model has nothing to show.

def inside_position(model, title: str = ""):
    """The similarity grid and the neighbour-vs-distant figures, or a note and None."""
    prefix = f"{title}: " if title else ""
    if inside.position_table(model) is None:
        return Missing(f"{prefix}no position embedding (pos_embed: none)"), None
    similarity = inside.position_similarity(model)
    near = inside.neighbour_similarity(similarity)
    return position_similarity_grid(similarity, f"{prefix}position embedding similarity".capitalize()
                                    if not title else f"{prefix}position embedding similarity"), near


def inside_filters(model, k: int = 28):
    try:
        tiles, explained = inside.patch_embedding_components(model, k)
    except ValueError as e:
        return Missing(str(e).removeprefix("model: "))
    return embedding_filters(tiles, explained)


def inside_attention_distance(model, x):
    return attention_distance_by_depth(inside.mean_attention_distance(model, x),
                                       x.shape[-1] / model.patch_embed.grid_size[1])


def inside_rollout(model, images, x):
    return attention_rollout_overlay(images, inside.attention_rollout(model, x))


# Patches per side below which the position-embedding similarity says nothing either way: on a
# 2x2 grid every patch neighbours every other and none is half the grid away from a neighbour.
MIN_GRID = 4


def neighbour_note(near: dict[str, float] | None, model=None) -> str:
    if near is None:
        return ""
    grid = model.patch_embed.grid_size[0] if model is not None else None
    if grid is not None and grid < MIN_GRID:
        verdict = (f"with a {grid}x{grid} patch grid there are too few patches to say whether closer ones are more "
                   f"similar (the paper's grids are 14x14 and larger; a smaller patch or larger image gives a grid "
                   f"of {MIN_GRID}x{MIN_GRID} or more)")
    else:
        verdict = "closer patches have more similar embeddings, as in the paper" if near["neighbour"] > near["distant"] \
            else "closer patches are not more similar here, unlike the paper"
    return (f"Mean cosine similarity of neighbouring patches' position embeddings: **{near['neighbour']:.3f}**; "
            f"of distant patches (at least half the grid apart): **{near['distant']:.3f}**. So {verdict}.")


def inside_best_vit(results_dir, df: pd.DataFrame) -> list:
    """The report's look inside the ViT best on validation: a caption, then the four pictures."""
    best = results.best_run(results.with_weights(results_dir, df))
    if best is None:
        return [Missing("No successful ViT run with saved weights and a validation accuracy: run a sweep with ViTs "
                        "to fill this section.")]
    cfg, model = results.load_model(results_dir, best)
    images, x = inside.sample_images(cfg, 8)
    run = df.loc[df["run_id"] == best].iloc[0]
    position, near = inside_position(model)
    return [Markdown(f"The ViT best on validation among those trained from scratch on `{cfg.dataset}` (the dataset "
                     f"with the most such runs), run `{best}` (depth {cfg.depth}, width {cfg.width}, patch "
                     f"{cfg.patch_size}, position embedding `{cfg.pos_embed}`; validation accuracy "
                     f"{run['val_accuracy']:.3f}, test accuracy {run['test_accuracy']:.3f}). "
                     f"Draw the same for any run with `notebooks/inspect.ipynb`."),
            inside_filters(model), position, Markdown(neighbour_note(near, model)),
            inside_attention_distance(model, x), inside_rollout(model, images, x)]


def position_embedding_variants(results_dir, df: pd.DataFrame, led: claims.Ledger) -> list:
    """Paper Table 8: test accuracy by position-embedding variant (ViT runs equal in all else),
    each variant minus none with the interval of its decision under the report's correction
    (led, the report's ledger over df), and each variant's similarity grid (its run best on
    validation) with the neighbour-vs-distant figures."""
    runs = one_factor_study(df, "pos_embed", "vit")
    if runs.empty:
        return [Missing("No ViT runs differ only in pos_embed: run params/pos_embed.yaml to fill this section.")]
    finding = led[claims.position_embedding_helps]
    against = {t.what.split(" minus ")[0]: t for t in finding.tests}
    rows, items = [], []
    for variant, group in runs.groupby("pos_embed"):
        test = against.get(variant)
        row = {"pos_embed": variant, "runs": len(group), "mean test accuracy": group["test_accuracy"].mean(),
               "minus none": ("–" if test is None else test.estimate.text(test.decision.level) if test.decision
                              else "needs 2+ seeds at every variant"),
               "neighbour similarity": None, "distant similarity": None}
        best = results.best_run(results.with_weights(results_dir, group))
        if best is not None:
            figure, near = inside_position(results.load_model(results_dir, best)[1], f"{variant} (run {best})")
            if near is not None:
                row.update({"neighbour similarity": near["neighbour"], "distant similarity": near["distant"]})
                items.append(figure)
        rows.append(row)
    table = pd.DataFrame(rows).style.format(
        {"mean test accuracy": "{:.3f}", "neighbour similarity": "{:.3f}", "distant similarity": "{:.3f}"},
        na_rep="–").hide(axis="index")
    return [table, Markdown("Similarity of neighbouring vs distant patches' embeddings, by variant:"), *items]
