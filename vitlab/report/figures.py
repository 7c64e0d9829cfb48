"""Figures of the report and the notebooks, each a function of the results DataFrame or of one
model's measurements, returned as a Figure (image, alt text, caption) or a Missing note."""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass

import matplotlib.figure
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns

from vitlab.report import scaling
from vitlab.report import crossing
from vitlab.report.crossing import AXES, Crossover
from vitlab.report.points import frontiers
from vitlab.report.studies import compute_group, ok_runs, one_factor_study, scaling_directions, two_factor_study
from vitlab.run.families import label

LABELS = {"depth": "depth (Transformer blocks)", "width": "width (hidden size D)",
          "mlp_dim": "MLP size (hidden units)", "patch_size": "patch size (px)", "train_size": "training images"}
METRIC_LABELS = {"test_accuracy": "test accuracy", "fewshot_10": "10-shot linear accuracy (transfer)",
                 "linear_probe": "linear probe accuracy (transfer)"}


def use_theme() -> None:
    """The figures' look (seaborn's whitegrid at notebook scale), set by the notebooks that draw
    them rather than on import, so that importing vitlab changes no one's matplotlib settings."""
    sns.set_theme(style="whitegrid", context="notebook")


@dataclass
class Missing:
    """What a report section shows when no runs fill it."""
    message: str

    def _repr_markdown_(self) -> str:
        return f"*{self.message}*"


@dataclass
class Figure:
    """A figure as the report shows it: the image with alt text, and a caption under it."""
    fig: matplotlib.figure.Figure
    alt: str
    caption: str = ""

    def _repr_html_(self) -> str:
        buffer = io.BytesIO()
        self.fig.savefig(buffer, format="png", dpi=96)  # laid out by tight_layout: one draw, not two
        png = base64.b64encode(buffer.getvalue()).decode()
        caption = f"<figcaption>{html.escape(self.caption)}</figcaption>" if self.caption else ""
        return (f'<figure><img src="data:image/png;base64,{png}" alt="{html.escape(self.alt)}" '
                f'style="max-width:100%"/>{caption}</figure>')


def _figure(title: str, size=(6.4, 4.2)):
    fig, ax = plt.subplots(figsize=size)
    ax.set_title(title)
    return fig, ax


def _done(fig, alt: str, caption: str = "", tight: bool = True) -> Figure:
    if tight:
        fig.tight_layout()
    plt.close(fig)  # shown once through Figure, not again by the inline backend
    return Figure(fig, alt, caption)


def _log_compute_axis(ax) -> None:
    """A log axis labelled at 1, 2 and 5 of each decade: a study within one decade of compute had
    a single label."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.LogFormatterSciNotation(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels collide


def _log2_axis_at(ax, values) -> None:
    """A log-2 axis ticked and labelled at the values run (500, 1,000, 2,000), not at 2^9, 2^10."""
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(sorted(set(values))))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def _families(runs: pd.DataFrame) -> str:
    return ", ".join(sorted(runs["model"].unique()))


def error_vs_compute(df: pd.DataFrame, extrapolate: float = 10.0, laws: dict | None = None,
                     crossed: list[tuple[str, str, Crossover]] | None = None):
    """Test error against training compute for the comparable runs trained from scratch on one
    dataset and training-set size, each family's Pareto frontier (chosen on validation error), the
    saturating power law of the ViT's best configuration at each compute, extrapolated with its
    band, and where the families' laws cross. laws (crossing.laws(df, "train_flops")) and crossed
    (crossing.between of them): where the caller has them, as the report does for this figure
    and its reading."""
    runs = compute_group(df, sorted(ok_runs(df)["model"].unique()))
    if runs.empty:
        return Missing("No successful runs yet.")
    fig, ax = _figure("Test error vs training compute")
    sns.scatterplot(data=runs, x="train_flops", y="test_error", hue="model", style="model", s=60, ax=ax, alpha=0.7)
    palette = dict(zip(sorted(runs["model"].unique()), sns.color_palette()))
    _, fronts = frontiers(runs, palette)
    for model, front in fronts.items():
        ax.plot(front["train_flops"], front["test_error"], color=palette[model], lw=1.2)
    note = ""
    # The law crossing.laws fits to the ViT's best configuration at each compute (the same runs and
    # split as the frontiers'), so the law drawn is the one whose crossings are marked.
    laws = crossing.laws(df, "train_flops") if laws is None else laws
    fit, ladder = laws["vit"]
    if fit is not None:
        x = np.logspace(np.log10(ladder["train_flops"].min()), np.log10(ladder["train_flops"].max() * extrapolate), 80)
        low, high = fit.band(x)
        ax.plot(x, fit.predict(x), color="black", lw=1, ls="--", label="ViT law")
        ax.fill_between(x, low, high, color="grey", alpha=0.2, lw=0)
        ax.legend(fontsize=8)
        ratio = fit.backtest.ratio if fit.backtest is not None else 1.0
        note = (f" Dashed black: error = {fit.form} fitted to the ViT's best configuration on validation at each compute "
                f"run (b = {fit.b:.2f}, e_inf = {fit.e_inf:.3f}), extrapolated to {extrapolate:g}x the largest run's "
                f"compute, with its 95% band (noise: {fit.noise}; both forms of the law; misfit learned from back-tests). "
                f"Back-test: {fit.backtest_summary()}"
                + ("." if extrapolate <= ratio else f"; beyond {ratio:.2g}x the extrapolation is not back-tested, "
                   "so the band there rests on the law's form alone."))
    elif len(ladder):
        note = (f" The ViT runs have {ladder['train_flops'].nunique()} distinct compute values; a scaling law needs "
                f"{scaling.MIN_X}, so none is fitted or extrapolated.")
    crossed = crossing.between(laws, "train_flops") if crossed is None else crossed
    note += _mark_crossings(ax, crossed, runs["train_flops"], "train_flops")
    _log_compute_axis(ax)
    ax.set(xlabel="training compute (FLOPs)", ylabel="test error")
    dataset, size = runs["dataset"].iloc[0], runs["train_size"].iloc[0]
    return _done(fig, f"Scatter plot of test error against training FLOPs on a log axis for {_families(runs)} runs, "
                      "with each family's Pareto frontier as a line.",
                 f"Mirrors the paper's Fig. 5: performance against pre-training compute by family, for runs trained "
                 f"from scratch on {dataset} with {size:,} training images; lines join each family's Pareto-optimal "
                 "configurations (no cheaper one is better on validation, on the first half of each configuration's "
                 "seeds), drawn at their mean test error over the other seeds, so a point chosen for a lucky seed is "
                 "not drawn at that seed's score." + note)


def accuracy_vs(df: pd.DataFrame, axis: str, model: str = "vit"):
    study = one_factor_study(df, axis, model)
    if study.empty:
        return Missing(f"No two successful {model} runs differ only in {axis}: "
                       f"add a grid over {axis} to the params file to fill this section.")
    name = label(model)
    fig, ax = _figure(f"{name} test accuracy vs {LABELS.get(axis, axis).split(' (')[0]}")
    sns.lineplot(data=study, x=axis, y="test_accuracy", errorbar=None, ax=ax)
    sns.scatterplot(data=study, x=axis, y="test_accuracy", ax=ax, s=40)
    if axis in ("width", "mlp_dim", "train_size"):
        _log2_axis_at(ax, study[axis])
    else:
        ax.set_xticks(sorted(study[axis].unique()))
    ax.set(xlabel=LABELS.get(axis, axis), ylabel="test accuracy")
    seeds = study.groupby(axis)["seed"].nunique().min()
    return _done(fig, f"Line plot of {name} test accuracy against {LABELS.get(axis, axis)} for "
                      f"{study[axis].nunique()} values.",
                 f"Mirrors one axis of the paper's Appendix D.2 (Fig. 8): {name} runs that differ only in {axis}"
                 + (f", {seeds} seeds each; points are single runs, the line joins their means." if seeds > 1
                    else ", one seed each."))


def accuracy_vs_train_size_by_model(df: pd.DataFrame, metric: str = "test_accuracy",
                                    crossed: list[tuple[str, str, Crossover]] | None = None):
    """The paper's Fig. 3 (test accuracy) or Fig. 4 (few-shot) by family against training images;
    for test accuracy, where the families' laws cross: crossed is crossing.crossings(df) where
    the caller has it."""
    studies = [one_factor_study(df, "train_size", m) for m in sorted(ok_runs(df)["model"].unique())]
    studies = [s for s in studies if not s.empty]
    if not studies:
        return Missing("No model family has runs that differ only in train_size: "
                       "run params/data_size.yaml to fill this section.")
    studies = [s for s in studies if s[metric].notna().any()]
    if not studies:
        return Missing(f"These runs have no {METRIC_LABELS[metric]}: they were recorded before vitlab "
                       "measured it, or their dataset has no transfer dataset.")
    data = pd.concat(studies)
    label = METRIC_LABELS[metric]
    fig, ax = _figure(f"{label[0].upper() + label[1:]} vs training set size, by model family")
    sns.lineplot(data=data, x="train_size", y=metric, hue="model", style="model", errorbar=None, ax=ax)
    sns.scatterplot(data=data, x="train_size", y=metric, hue="model", style="model", ax=ax, s=40, legend=False)
    marked = ""
    if metric == "test_accuracy":
        marked = _mark_crossings(ax, crossing.crossings(df) if crossed is None else crossed, data["train_size"])
    _log2_axis_at(ax, data["train_size"])
    ax.set(xlabel=LABELS["train_size"], ylabel=label)
    return _done(fig, f"Line plot of {label} against training set size on a log axis for {_families(data)}.",
                 ("Mirrors the paper's Fig. 3" if metric == "test_accuracy" else "Mirrors the paper's Fig. 4 (linear few-shot)")
                 + ": nested, stratified subsets of one training pool, each family trained for the same steps; "
                 "points are single runs (seeds), lines join their means. The claims table above gives the "
                 "comparisons' intervals." + marked)


def _mark_crossings(ax, crossed: list[tuple[str, str, Crossover]], values: pd.Series, axis: str = "train_size") -> str:
    """Where the fitted laws against axis cross (crossed) inside the values run: a dashed line,
    and its interval shaded (within the values run); the caption's words for them."""
    words = []
    for first, second, found in crossed:
        if not values.min() < found.x <= values.max():
            continue
        low, high = (min(max(v, values.min()), values.max()) for v in found.interval)
        ax.axvspan(low, high, color="grey", alpha=0.12, lw=0)
        ax.axvline(found.x, color="grey", lw=1, ls="--")
        words.append(f"the {label(first)}'s fitted error falls below the {label(second)}'s at "
                     f"{AXES[axis].format(found.x)}")
    lines = "The dashed grey line marks" if len(words) == 1 else "The dashed grey lines mark"
    within = "sizes" if axis == "train_size" else "compute"
    return f" {lines} where {' and '.join(words)}; the shading, the 95% interval within the {within} run." if words else ""


def scaling_directions_plot(df: pd.DataFrame):
    runs = scaling_directions(df)
    if runs.empty or runs["direction"].nunique() < 2:
        return Missing("No ViT runs scale depth, width, MLP size or patch size from a shared base: "
                       "run params/scaling_all.yaml to fill this section.")
    fig, ax = _figure("Test error vs compute, by scaling direction")
    sns.lineplot(data=runs.sort_values("train_flops"), x="train_flops", y="test_error", hue="direction",
                 style="direction", marker="o", errorbar=None, estimator="mean", ax=ax)
    _log_compute_axis(ax)
    ax.set(xlabel="training compute (FLOPs)", ylabel="test error")
    return _done(fig, "Line plot of ViT test error against training FLOPs, one line per scaling direction: "
                      + ", ".join(sorted(runs["direction"].unique())) + ".",
                 "Mirrors the paper's Appendix D.2 (Fig. 8): from one base ViT, scale depth, width (heads "
                 "following it), MLP size, patch size (smaller), or several at once; a steeper line gains more per unit "
                 "of compute.")


def pooling_plot(df: pd.DataFrame):
    study = two_factor_study(df, "pool", "lr", "vit")
    if study.empty or study["pool"].nunique() < 2:
        return Missing("No ViT runs differ only in pooling (and learning rate): "
                       "run params/pooling.yaml to fill this section.")
    fig, ax = _figure("Class token vs global average pooling")
    sns.pointplot(data=study, x="lr", y="test_accuracy", hue="pool", dodge=0.2, errorbar=None, ax=ax)
    sns.stripplot(data=study, x="lr", y="test_accuracy", hue="pool", dodge=0.2, ax=ax, alpha=0.5, legend=False)
    ax.set(xlabel="learning rate", ylabel="test accuracy")
    return _done(fig, "Point plot of ViT test accuracy by learning rate, class token against average pooling.",
                 "Mirrors the paper's Appendix D.3 (Fig. 9): both heads work, but each wants its own learning rate. "
                 "Large markers are means over seeds; small ones single runs.")


def training_curve(history: list[dict], title: str):
    """Training loss and accuracy per epoch of one run; a note instead when it never trained."""
    if not history:
        return Missing("no training steps, so no training curve")
    long = pd.DataFrame(history).melt("epoch", ["train_loss", "train_accuracy"])
    fig, ax = _figure(title)
    sns.lineplot(data=long, x="epoch", y="value", hue="variable", marker="o", ax=ax)
    ax.set(ylabel="")
    return _done(fig, f"Line plot of training loss and training accuracy over {len(history)} epochs.")


def position_similarity_grid(similarity, title: str = "Position embedding similarity"):
    """One heat map per patch of its embedding's cosine similarity with every other patch's, laid out as the
    patches are (paper Fig. 7 centre): one image of tiles, as rows x cols axes took a second to draw."""
    rows, cols, h, w = similarity.shape
    mosaic = np.full((rows, h + 1, cols, w + 1), np.nan)  # each tile with a row and a column of gap
    mosaic[:, :h, :, :w] = similarity.numpy().transpose(0, 2, 1, 3)
    fig, ax = plt.subplots(figsize=(1.1 * cols + 1, 1.1 * rows))
    image = ax.imshow(mosaic.reshape(rows * (h + 1), cols * (w + 1))[:-1, :-1], vmin=-1, vmax=1,
                      cmap=plt.get_cmap("viridis").with_extremes(bad="white"))
    ax.set_xticks(np.arange(cols) * (w + 1) + (w - 1) / 2, [str(c + 1) for c in range(cols)], fontsize=8)
    ax.set_yticks(np.arange(rows) * (h + 1) + (h - 1) / 2, [str(r + 1) for r in range(rows)], fontsize=8)
    ax.tick_params(length=0)
    ax.grid(False)
    ax.set_frame_on(False)
    fig.colorbar(image, ax=ax, shrink=0.6, label="cosine similarity")
    ax.set_title(title)
    return _done(fig, f"A {rows} by {cols} grid of heat maps, one per patch, each showing the cosine similarity of "
                      "that patch's position embedding with every other patch's.",
                 "Mirrors the paper's Fig. 7 (centre).")


def embedding_filters(tiles, explained, title: str = "Patch-embedding filters: principal components"):
    """The top principal components of the patch-embedding weights as image tiles (paper Fig. 7 left)."""
    k = len(tiles)
    cols = min(7, k)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.4 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < k:
            tile = tiles[i].permute(1, 2, 0).numpy()
            tile = (tile - tile.min()) / (tile.max() - tile.min() + 1e-12)
            ax.imshow(tile.squeeze(-1) if tile.shape[-1] == 1 else tile, cmap="gray")
            ax.set_title(f"{explained[i].item():.0%}", fontsize=7)
    fig.suptitle(title)
    return _done(fig, f"{k} grey-scale tiles, the top principal components of the patch-embedding filters, "
                      "each titled with the share of variance it explains.", "Mirrors the paper's Fig. 7 (left).")


def attention_distance_by_depth(distance, patch_stride: float, title: str = "Mean attention distance"):
    """Attention distance in pixels against block number, one point per head (paper Fig. 7 right)."""
    depth, heads = distance.shape
    frame = pd.DataFrame({"block": [d + 1 for d in range(depth) for _ in range(heads)],
                          "head": [h + 1 for _ in range(depth) for h in range(heads)],
                          "distance": distance.flatten().tolist()})
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    sns.scatterplot(data=frame, x="block", y="distance", hue="head", palette="tab10", ax=ax, s=45)
    ax.set(xlabel="network depth (block)", ylabel="mean attention distance (pixels)", title=title,
           xticks=range(1, depth + 1))
    # Dark and dashed, so that it stands out from the grid, and always inside the axes.
    ax.axhline(patch_stride, color="black", lw=1.2, ls="--", zorder=1)
    ax.set_ylim(0, max(ax.get_ylim()[1], 1.1 * patch_stride))
    ax.legend(title="head", fontsize=7, ncols=2)
    return _done(fig, f"Scatter plot of mean attention distance in pixels against block number 1 to {depth}, "
                      f"one point for each of {heads} heads, with a dashed line at {patch_stride:g} pixels.",
                 f"Mirrors the paper's Fig. 7 (right); the dashed line is the distance between neighbouring "
                 f"patches ({patch_stride:g} px).")


def attention_rollout_overlay(images, rollout, title: str = "Attention rollout"):
    """Each image beside the rollout map laid over it (paper Fig. 6)."""
    import torch.nn.functional as F

    n = len(images)
    size = images.shape[-2:]
    maps = F.interpolate(rollout[:, None].float(), size=size, mode="nearest")[:, 0]  # one block per patch
    fig, axes = plt.subplots(2, n, figsize=(1.5 * n, 3.2), squeeze=False)
    for i in range(n):
        picture = images[i].permute(1, 2, 0).numpy()
        picture = picture[..., 0] if picture.shape[-1] == 1 else picture
        heat = maps[i] / maps[i].max()
        axes[0][i].imshow(picture, cmap="gray")
        axes[1][i].imshow(picture, cmap="gray")
        axes[1][i].imshow(heat.numpy(), cmap="inferno", alpha=0.6)
        for ax in axes[:, i]:
            ax.axis("off")
    fig.suptitle(title)
    return _done(fig, f"{n} test images in the top row; below each, the same image with its attention rollout "
                      "map laid over it, brighter where the model attends.", "Mirrors the paper's Fig. 6.")


def learning_curve(history: list[dict], title: str, extrapolate: float = 2.0):
    """One run's training loss against images seen, the saturating power law fitted to it and
    extrapolated, with its band and back-test; a note when there are too few epochs."""
    try:
        fit = scaling.learning_curve(history)
    except ValueError as e:
        return Missing(f"No learning-curve fit: {e}.")
    seen = np.array([h["images_seen"] for h in history], dtype=float)
    x = np.geomspace(seen.min(), seen.max() * extrapolate, 80)
    low, high = fit.band(x)
    fig, ax = _figure(title)
    ax.plot(seen, [h["train_loss"] for h in history], "o", ms=4, label="training loss per epoch")
    ax.plot(x, fit.predict(x), color="black", lw=1, ls="--", label="fit")
    ax.fill_between(x, low, high, color="grey", alpha=0.2, lw=0)
    ax.set(xscale="log", xlabel="images seen", ylabel="training loss")
    ax.legend(fontsize=8)
    return _done(fig, f"Scatter plot of training loss against images seen over {len(history)} epochs on a log axis, "
                      f"with a fitted curve extrapolated to {extrapolate:g}x and its band.",
                 f"loss = {fit.form} (b = {fit.b:.2f}, e_inf = {fit.e_inf:.3f}) fitted to the epochs, with its "
                 f"95% band (noise: {fit.noise}; both forms of the law; misfit from back-tests). Back-test: "
                 f"{fit.backtest_summary()}.")
