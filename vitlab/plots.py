"""Report and notebook figures, each a function of the results DataFrame or of one model."""
from __future__ import annotations

from dataclasses import dataclass

import base64
import html
import io

import matplotlib.figure
import matplotlib.ticker
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from vitlab.studies import (CONFIG_FIELDS, Comparison, combine, compare, compute_group, direction_trends, frontiers,
                            ok_runs, one_factor_study)

LABELS = {"depth": "depth (Transformer blocks)", "width": "width (hidden size D)",
          "patch_size": "patch size (px)", "train_size": "training images"}
AXIS_NAMES = {"train_size": "training images", "train_flops": "training FLOPs", "n_params": "parameters"}
METRIC_LABELS = {"test_accuracy": "test accuracy", "fewshot_10": "10-shot linear accuracy (transfer)",
                 "linear_probe": "linear probe accuracy (transfer)"}

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
        self.fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
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
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels collide


def _families(runs: pd.DataFrame) -> str:
    return ", ".join(sorted(runs["model"].unique()))


def error_vs_compute(df: pd.DataFrame, extrapolate: float = 10.0):
    """Test error against training compute for the runs trained from scratch on one dataset and
    training-set size, each family's Pareto frontier (chosen on validation error), and the
    saturating power law fitted to the ViT frontier, extrapolated with its band."""
    from vitlab import scaling

    runs = compute_group(df, sorted(ok_runs(df)["model"].unique()))
    if runs.empty:
        return Missing("No successful runs yet.")
    fig, ax = _figure("Test error vs training compute")
    sns.scatterplot(data=runs, x="train_flops", y="test_error", hue="model", style="model", s=60, ax=ax, alpha=0.7)
    palette = dict(zip(sorted(runs["model"].unique()), sns.color_palette()))
    comparison, fronts = frontiers(runs, palette)
    for model, front in fronts.items():
        ax.plot(front["train_flops"], front["test_error"], color=palette[model], lw=1.2)
    note = ""
    front = fronts.get("vit", runs.iloc[:0])
    fit = _fit(front, "train_flops", comparison)
    if fit is not None:
        x = np.logspace(np.log10(front["train_flops"].min()), np.log10(front["train_flops"].max() * extrapolate), 80)
        low, high = fit.band(x)
        ax.plot(x, fit.predict(x), color="black", lw=1, ls="--", label="ViT frontier fit")
        ax.fill_between(x, low, high, color="grey", alpha=0.2, lw=0)
        ax.legend(fontsize=8)
        note = (f" Dashed: error = {fit.form} fitted to the ViT frontier (b = {fit.b:.2f}, e_inf = {fit.e_inf:.3f}), "
                f"extrapolated to {extrapolate:g}x the largest run's compute, with its 95% parametric-bootstrap band "
                f"({fit.kept} of {fit.n_boot} refits kept; noise: {fit.noise}).")
    elif len(front):
        note = (f" The ViT frontier has {front['train_flops'].nunique()} distinct compute values; a scaling law needs "
                f"{scaling.MIN_THREE_PARAMETER_X}, so none is fitted or extrapolated.")
    _log_compute_axis(ax)
    ax.set(xlabel="training compute (FLOPs)", ylabel="test error")
    dataset, size = runs["dataset"].iloc[0], runs["train_size"].iloc[0]
    return _done(fig, f"Scatter plot of test error against training FLOPs on a log axis for {_families(runs)} runs, "
                      "with each family's Pareto frontier as a line.",
                 f"Mirrors the paper's Fig. 5: performance against pre-training compute by family, for runs trained "
                 f"from scratch on {dataset} with {size:,} training images; lines join each family's Pareto-optimal "
                 "configurations (no cheaper one is better on validation), drawn at their mean test error over "
                 "seeds." + note)


def _fit(points: pd.DataFrame, x: str, comparison: Comparison):
    """The saturating power law of test error against x over study points (seed means), with
    each point's noise from the comparison's pooled seed variance and the test set; None when
    there are too few distinct x values."""
    from vitlab import scaling

    if points.empty or points[x].nunique() < scaling.MIN_THREE_PARAMETER_X:
        return None
    sd, df = None, None
    if comparison.noise.df:
        p = points["test_accuracy"].to_numpy()
        sd = np.sqrt(comparison.noise.var / points["n"].to_numpy() + p * (1 - p) / comparison.test_size)
        df = comparison.noise.df
    return scaling.fit_saturating_power_law(points[x], points["test_error"], noise_sd=sd, noise_df=df)


def accuracy_vs(df: pd.DataFrame, axis: str, model: str = "vit"):
    study = one_factor_study(df, axis, model)
    if study.empty:
        return Missing(f"No two successful {model} runs differ only in {axis}: "
                       f"add a grid over {axis} to the params file to fill this section.")
    fig, ax = _figure(f"{'ViT' if model == 'vit' else model} test accuracy vs {axis}")
    sns.lineplot(data=study, x=axis, y="test_accuracy", errorbar=None, ax=ax)
    sns.scatterplot(data=study, x=axis, y="test_accuracy", ax=ax, s=40)
    if axis in ("width", "train_size"):
        ax.set_xscale("log", base=2)
    ax.set(xlabel=LABELS.get(axis, axis), ylabel="test accuracy")
    seeds = study.groupby(axis)["seed"].nunique().min()
    name = "ViT" if model == "vit" else model
    return _done(fig, f"Line plot of {name} test accuracy against {LABELS.get(axis, axis)} for "
                      f"{study[axis].nunique()} values.",
                 f"Mirrors one axis of the paper's Appendix D.2 (Fig. 8): {name} runs that differ only in {axis}"
                 + (f", {seeds} seeds each; points are single runs, the line joins their means." if seeds > 1
                    else ", one seed each."))


def accuracy_vs_train_size_by_model(df: pd.DataFrame, metric: str = "test_accuracy"):
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
    ax.set_xscale("log", base=2)
    ax.set(xlabel=LABELS["train_size"], ylabel=label)
    return _done(fig, f"Line plot of {label} against training set size on a log axis for {_families(data)}.",
                 ("Mirrors the paper's Fig. 3" if metric == "test_accuracy" else "Mirrors the paper's Fig. 4 (linear few-shot)")
                 + ": nested, stratified subsets of one training pool, each family trained for the same steps; "
                 "points are single runs (seeds), lines join their means. The claims table above gives the "
                 "comparisons' intervals.")


def scaling_directions_plot(df: pd.DataFrame):
    from vitlab.studies import scaling_directions

    runs = scaling_directions(df)
    if runs.empty or runs["direction"].nunique() < 2:
        return Missing("No ViT runs scale depth, width or patch size from a shared base: "
                       "run params/scaling_all.yaml to fill this section.")
    fig, ax = _figure("Test error vs compute, by scaling direction")
    sns.lineplot(data=runs.sort_values("train_flops"), x="train_flops", y="test_error", hue="direction",
                 style="direction", marker="o", errorbar=None, estimator="mean", ax=ax)
    _log_compute_axis(ax)
    ax.set(xlabel="training compute (FLOPs)", ylabel="test error")
    return _done(fig, "Line plot of ViT test error against training FLOPs, one line per scaling direction: "
                      + ", ".join(sorted(runs["direction"].unique())) + ".",
                 "Mirrors the paper's Appendix D.2 (Fig. 8): from one base ViT, scale depth, width (with heads and "
                 "MLP), patch size (smaller), or several at once; a steeper line gains more per unit of compute.")


def pooling_plot(df: pd.DataFrame):
    from vitlab.studies import two_factor_study

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


def fits_table(df: pd.DataFrame):
    """Saturating power laws of test error against training images (each family's data-size
    study) and against compute and parameters (each ViT scaling direction), fitted to study
    points (seed means), with 95% parametric-bootstrap intervals and the prediction at 10x."""
    from vitlab import scaling
    from vitlab.studies import scaling_directions

    sets = [(f"{model}: training set size", one_factor_study(df, "train_size", model), "train_size")
            for model in sorted(ok_runs(df)["model"].unique())]
    directions = scaling_directions(df)
    for direction, part in (directions.groupby("direction") if not directions.empty else []):
        sets += [(f"vit: scaling {direction}", part, "train_flops"), (f"vit: scaling {direction}", part, "n_params")]
    rows = []
    for study, runs, x in sets:
        comparison = compare(runs)
        fit = _fit(comparison.points, x, comparison)
        if fit is None:
            continue
        top = comparison.points[x].max() * 10
        low, high = fit.band([top])
        rows.append({"study": study, "x": AXIS_NAMES[x], "points": len(comparison.points), "runs": len(runs),
                     "law": fit.form, "b": _interval(fit.b, fit.intervals["b"]),
                     "e_inf": _interval(fit.e_inf, fit.intervals["e_inf"]),
                     "a": f"{fit.a:.3g}", "c": f"{fit.c:.3g}",
                     "error at 10x the largest x": f"{fit.predict([top])[0]:.3f} [{low[0]:.3f}, {high[0]:.3f}]",
                     "bootstrap": f"{fit.kept} of {fit.n_boot} kept; noise: {fit.noise}"})
    if not rows:
        return Missing(f"No study has runs at {scaling.MIN_THREE_PARAMETER_X} or more distinct values of data size, "
                       "compute or parameters: run params/data_size.yaml, params/depth.yaml or params/width.yaml to "
                       "fit scaling laws.")
    return pd.DataFrame(rows).style.hide(axis="index")


def _interval(value: float, interval) -> str:
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def recommendation(df: pd.DataFrame) -> str:
    """Which scaling direction the runs favour per unit of compute, as a markdown paragraph."""
    comparison, trends = direction_trends(df)
    if len(trends) < 2:
        return ("*Not enough runs to compare scaling directions: run params/scaling_all.yaml "
                "(depth, width and patch size from one base).*")
    if not comparison.noise.df:
        return ("*No configuration along the scaling directions was run with two or more seeds, so the trends have "
                "no interval: add `seed: [0, 1]` to params/scaling_all.yaml to compare them.*")
    slopes = {d: comparison.contrast(t["weights"]) for d, t in trends.items()}  # test error per decade
    ranked = sorted(slopes.items(), key=lambda kv: kv[1].value)
    lines = [f"- **{d}**: test error {e.value:+.3f} per 10x compute (95% interval {e.low:+.3f} to "
             f"{e.high:+.3f}; {trends[d]['points']} configurations)" for d, e in ranked]
    (best, _), (second, _) = ranked[0], ranked[1]
    weights = combine((trends[best]["weights"], 1), (trends[second]["weights"], -1))
    clear = comparison.contrast(weights).decided() == -1  # the best direction's error falls faster
    budget = comparison.points["train_flops"].max() * 10
    return ("For more compute (say 10x the largest run here, " f"{budget:.2g} FLOPs), the runs favour scaling "
            f"**{best}**" + (f" (the difference from {second}'s trend has a 95% interval clear of zero)" if clear
                             else f", though not clearly ahead of {second} (the 95% interval of the difference "
                                  "includes zero)")
            + f"; seed sd {comparison.noise.sd:.3f} ({comparison.noise.df} df) plus test-set sampling:\n\n"
            + "\n".join(lines))


def tuning_table(df: pd.DataFrame):
    """Per-point tuning: at each study point and seed, the values chosen on validation."""
    chosen = [c for c in df.columns if c.startswith("chosen_")]
    if not chosen:
        return Missing("No tuned axes: a params block with `tune: {lr: [...], weight_decay: [...]}` tunes them at "
                       "each study point on the validation split.")
    runs = ok_runs(df)
    cols = ["model", "dataset", "train_size", "depth", "width", "patch_size", "seed", *chosen, "candidates",
            "val_accuracy", "test_accuracy"]
    table = runs[cols].sort_values(["model", "dataset", "train_size", "depth", "width", "seed"])
    return table.rename(columns={c: c.removeprefix("chosen_") + " (chosen)" for c in chosen}).style.format(
        {"val_accuracy": "{:.3f}", "test_accuracy": "{:.3f}", "train_size": "{:,.0f}", "depth": "{:.0f}",
         "width": "{:.0f}", "patch_size": "{:.0f}"}, na_rep="–").hide(axis="index")


def transfer_table(df: pd.DataFrame):
    """Fine-tuning transfer: each fine-tuned run beside its pre-training run and, where one
    exists, the same run trained from scratch."""
    runs = ok_runs(df)
    tuned = runs[runs["pretrained"].notna()] if "pretrained" in runs else runs.iloc[:0]
    if tuned.empty:
        return Missing("No fine-tuning runs: run params/transfer.yaml (pre-train on mnist5k, fine-tune on digits).")
    by_id = runs.set_index("run_id")
    fields_ = [c for c in CONFIG_FIELDS if c != "pretrained"]

    def config_key(row) -> tuple:  # missing values compare equal, whatever their dtype
        return tuple(None if pd.isna(row[k]) else row[k] for k in fields_)

    scratch = runs[runs["pretrained"].isna()]
    scratch_accuracy = scratch.groupby(scratch.apply(config_key, axis=1))["test_accuracy"].mean()
    rows = []
    for _, run in tuned.iterrows():
        source = by_id.loc[run["pretrained"]] if run["pretrained"] in by_id.index else None
        rows.append({"model": run["model"], "pre-trained on": source["dataset"] if source is not None else "?",
                     "pre-training EFLOPs": source["train_exaflops"] if source is not None else None,
                     "pre-training accuracy": source["test_accuracy"] if source is not None else None,
                     "fine-tuned on": run["dataset"], "fine-tuned accuracy": run["test_accuracy"],
                     "from scratch": scratch_accuracy.get(config_key(run))})
    return pd.DataFrame(rows).style.format(
        {"pre-training EFLOPs": "{:.3g}", "pre-training accuracy": "{:.3f}", "fine-tuned accuracy": "{:.3f}",
         "from scratch": "{:.3f}"}, na_rep="–").hide(axis="index")


def models_table(df: pd.DataFrame):
    """The paper's Table 1: the distinct architectures run, with their size and cost."""
    runs = ok_runs(df)
    if runs.empty:
        return Missing("No successful runs yet.")
    cols = ["model", "depth", "width", "mlp_dim", "heads", "patch_size", "cnn_depth", "cnn_width", "n_params",
            "flops_per_image"]
    table = runs[cols].drop_duplicates().sort_values(["model", "n_params"])
    return table.style.format({"n_params": "{:,.0f}", "flops_per_image": "{:.3g}", "depth": "{:.0f}",
                               "width": "{:.0f}", "mlp_dim": "{:.0f}", "heads": "{:.0f}", "patch_size": "{:.0f}",
                               "cnn_depth": "{:.0f}", "cnn_width": "{:.0f}"}, na_rep="–").hide(axis="index")


def best_by_family(df: pd.DataFrame):
    """The paper's Table 2: each family's best run on validation, its accuracies and its cost."""
    from vitlab import results

    runs = ok_runs(df)
    best = [results.best_run(runs, model) for model in sorted(runs["model"].unique())]
    best = runs[runs["run_id"].isin([b for b in best if b])]
    if best.empty:
        return Missing("No successful runs with a validation accuracy yet.")
    cols = ["model", "run_id", "depth", "width", "patch_size", "train_size", "n_params", "val_accuracy", "test_accuracy",
            "fewshot_10", "linear_probe", "train_exaflops", "wall_time_s"]
    return best[cols].rename(columns={"fewshot_10": "10-shot (transfer)", "linear_probe": "linear probe (transfer)",
                                      "train_exaflops": "train EFLOPs"}).style.format(
        {"n_params": "{:,.0f}", "val_accuracy": "{:.3f}", "test_accuracy": "{:.3f}", "10-shot (transfer)": "{:.3f}",
         "linear probe (transfer)": "{:.3f}", "train EFLOPs": "{:.3g}", "wall_time_s": "{:.0f}",
         "depth": "{:.0f}", "width": "{:.0f}", "patch_size": "{:.0f}", "train_size": "{:,.0f}"},
        na_rep="–").hide(axis="index")


def runs_table(df: pd.DataFrame):
    columns = ["run_id", "status", "model", "depth", "width", "heads", "mlp_dim", "patch_size",
               "train_size", "seed", "n_params", "flops_per_image", "train_flops", "val_accuracy", "test_accuracy",
               "wall_time_s", "images_per_s"]
    table = df[columns].sort_values(["model", "train_flops"], na_position="last")
    return table.style.format({"depth": "{:.0f}", "width": "{:.0f}", "heads": "{:.0f}", "mlp_dim": "{:.0f}",
                               "patch_size": "{:.0f}", "n_params": "{:,.0f}", "flops_per_image": "{:.3g}",
                               "train_flops": "{:.3g}", "val_accuracy": "{:.3f}", "test_accuracy": "{:.3f}",
                               "wall_time_s": "{:.1f}", "images_per_s": "{:,.0f}"},
                              na_rep="–").hide(axis="index")


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
    """One small heat map per patch: its embedding's cosine similarity with every other
    patch's, laid out as the patches are (paper Fig. 7 centre)."""
    rows, cols = similarity.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols + 1, 1.1 * rows), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            image = axes[r][c].imshow(similarity[r, c].numpy(), vmin=-1, vmax=1, cmap="viridis")
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
    for c in range(cols):
        axes[-1][c].set_xlabel(str(c + 1), fontsize=8)
    for r in range(rows):
        axes[r][0].set_ylabel(str(r + 1), fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.6, label="cosine similarity")
    fig.suptitle(title)
    return _done(fig, f"A {rows} by {cols} grid of heat maps, one per patch, each showing the cosine similarity of "
                      "that patch's position embedding with every other patch's.",
                 "Mirrors the paper's Fig. 7 (centre).", tight=False)


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
    ax.axhline(patch_stride, color="grey", lw=0.8, ls=":")
    ax.set_ylim(bottom=0)
    ax.legend(title="head", fontsize=7, ncols=2)
    return _done(fig, f"Scatter plot of mean attention distance in pixels against block number 1 to {depth}, "
                      f"one point for each of {heads} heads.",
                 "Mirrors the paper's Fig. 7 (right); the dotted line is the distance between neighbouring patches.")


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


# Figures of one trained model's insides, as the inspect notebook and the report show them:
# each a figure, or a Missing note where the model has nothing to show.

def inside_position(model, label: str = ""):
    """The similarity grid and the neighbour-vs-distant figures, or a note and None."""
    from vitlab import inspect

    prefix = f"{label}: " if label else ""
    if inspect.position_table(model) is None:
        return Missing(f"{prefix}no position embedding (pos_embed: none)"), None
    similarity = inspect.position_similarity(model)
    near = inspect.neighbour_similarity(similarity)
    return position_similarity_grid(similarity, f"{prefix}position embedding similarity".capitalize()
                                    if not label else f"{prefix}position embedding similarity"), near


def inside_filters(model, k: int = 28):
    from vitlab import inspect

    try:
        tiles, explained = inspect.patch_embedding_components(model, k)
    except ValueError as e:
        return Missing(str(e).removeprefix("model: "))
    return embedding_filters(tiles, explained)


def inside_attention_distance(model, x):
    from vitlab import inspect

    return attention_distance_by_depth(inspect.mean_attention_distance(model, x), x.shape[-1] / model.patch_embed.grid_size[1])


def inside_rollout(model, images, x):
    from vitlab import inspect

    return attention_rollout_overlay(images, inspect.attention_rollout(model, x))


def neighbour_note(near: dict[str, float] | None) -> str:
    if near is None:
        return ""
    verdict = "closer patches have more similar embeddings, as in the paper" if near["neighbour"] > near["distant"] \
        else "closer patches are not more similar here, unlike the paper"
    return (f"Mean cosine similarity of neighbouring patches' position embeddings: **{near['neighbour']:.3f}**; "
            f"of distant patches (at least half the grid apart): **{near['distant']:.3f}**. So {verdict}.")


def _with_weights(results_dir, df: pd.DataFrame) -> pd.DataFrame:
    """The runs of df whose trained weights were saved (runs before vitlab saved them have none)."""
    from vitlab import results

    return df[df["run_id"].map(lambda r: results.weights_path(results_dir, r).is_file())]


def best_vit_with_weights(results_dir, df: pd.DataFrame | None = None) -> str | None:
    """The run id of the ViT best on validation among the runs with saved weights, or None."""
    from vitlab import results

    return results.best_run(_with_weights(results_dir, results.load(results_dir) if df is None else df))


def inside_best_vit(results_dir, df: pd.DataFrame) -> list:
    """The report's look inside the ViT best on validation: a caption, then the four pictures."""
    from IPython.display import Markdown

    from vitlab import inspect, results

    best = best_vit_with_weights(results_dir, df)
    if best is None:
        return [Missing("No successful ViT run with saved weights and a validation accuracy: run a sweep with ViTs "
                        "to fill this section.")]
    cfg, model = results.load_model(results_dir, best)
    images, x = inspect.sample_images(cfg, 8)
    run = df.loc[df["run_id"] == best].iloc[0]
    position, near = inside_position(model)
    return [Markdown(f"The ViT best on validation, run `{best}` (depth {cfg.depth}, width {cfg.width}, patch "
                     f"{cfg.patch_size}, position embedding `{cfg.pos_embed}`; validation accuracy "
                     f"{run['val_accuracy']:.3f}, test accuracy {run['test_accuracy']:.3f}). "
                     f"Draw the same for any run with `notebooks/inspect.ipynb`."),
            inside_filters(model), position, Markdown(neighbour_note(near)),
            inside_attention_distance(model, x), inside_rollout(model, images, x)]


def position_embedding_variants(results_dir, df: pd.DataFrame) -> list:
    """Paper Table 8: test accuracy by position-embedding variant (ViT runs equal in all else),
    with its 95% interval, and each variant's similarity grid (its run best on validation) with
    the neighbour-vs-distant figures."""
    from IPython.display import Markdown

    from vitlab import results

    runs = one_factor_study(df, "pos_embed", "vit")
    if runs.empty:
        return [Missing("No ViT runs differ only in pos_embed: run params/pos_embed.yaml to fill this section.")]
    comparison = compare(runs)
    rows, items = [], []
    for variant, group in runs.groupby("pos_embed"):
        point = comparison.points[comparison.points["pos_embed"] == variant]["key"].iloc[0]
        estimate = comparison.contrast({point: 1.0})
        row = {"pos_embed": variant, "runs": len(group), "mean test accuracy": group["test_accuracy"].mean(),
               "95% interval": f"{estimate.low:.3f} to {estimate.high:.3f}" if estimate else "needs 2+ seeds",
               "neighbour similarity": None, "distant similarity": None}
        best = results.best_run(_with_weights(results_dir, group))
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
