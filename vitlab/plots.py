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

from vitlab.studies import CONFIG_FIELDS, ok_runs, one_factor_study

LABELS = {"depth": "depth (Transformer blocks)", "width": "width (hidden size D)",
          "patch_size": "patch size (px)", "train_size": "training images"}
AXIS_NAMES = {"train_size": "training images", "train_flops": "training FLOPs", "n_params": "parameters"}
# A four-parameter law needs a fifth point before its fit says anything.
MIN_FIT_POINTS = 5
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
    """Test error against training compute for every run, each family's Pareto frontier,
    and the saturating power law fitted to the ViT runs, extrapolated with its band."""
    from vitlab import scaling

    runs = ok_runs(df)
    if runs.empty:
        return Missing("No successful runs yet.")
    fig, ax = _figure("Test error vs training compute")
    sns.scatterplot(data=runs, x="train_flops", y="test_error", hue="model", style="model", s=60, ax=ax, alpha=0.7)
    palette = dict(zip(sorted(runs["model"].unique()), sns.color_palette()))
    for model, group in runs.groupby("model"):
        front = group[scaling.pareto_frontier(group["train_flops"], group["test_error"])].sort_values("train_flops")
        ax.plot(front["train_flops"], front["test_error"], color=palette.get(model), lw=1.2)
    note = ""
    vit = runs[runs["model"] == "vit"]
    front = vit[scaling.pareto_frontier(vit["train_flops"], vit["test_error"])] if len(vit) else vit
    if front["train_flops"].nunique() >= MIN_FIT_POINTS:
        fit = scaling.fit_saturating_power_law(front["train_flops"], front["test_error"])
        x = np.logspace(np.log10(front["train_flops"].min()), np.log10(front["train_flops"].max() * extrapolate), 80)
        low, high = fit.band(x)
        ax.plot(x, fit.predict(x), color="black", lw=1, ls="--", label="ViT frontier fit")
        ax.fill_between(x, low, high, color="grey", alpha=0.2, lw=0)
        ax.legend(fontsize=8)
        note = (f" Dashed: error = a(C + c)^-b + e_inf fitted to the ViT frontier (b = {fit.b:.2f}, "
                f"e_inf = {fit.e_inf:.3f}), extrapolated to {extrapolate:g}x the largest run's compute, "
                "with its 95% bootstrap band.")
    _log_compute_axis(ax)
    ax.set(xlabel="training compute (FLOPs)", ylabel="test error")
    return _done(fig, f"Scatter plot of test error against training FLOPs on a log axis for {_families(runs)} runs, "
                      "with each family's Pareto frontier as a line.",
                 "Mirrors the paper's Fig. 5: performance against pre-training compute by family; lines join "
                 "each family's Pareto-optimal runs (no cheaper run is better)." + note)


def accuracy_vs(df: pd.DataFrame, axis: str, model: str = "vit"):
    study = one_factor_study(df, axis, model)
    if study.empty:
        return Missing(f"No two successful {model} runs differ only in {axis}: "
                       f"add a grid over {axis} to the params file to fill this section.")
    fig, ax = _figure(f"{'ViT' if model == 'vit' else model} test accuracy vs {axis}")
    sns.lineplot(data=study, x=axis, y="test_accuracy", marker="o", errorbar=("ci", 95), ax=ax)
    if axis in ("width", "train_size"):
        ax.set_xscale("log", base=2)
    ax.set(xlabel=LABELS.get(axis, axis), ylabel="test accuracy")
    seeds = study.groupby(axis)["seed"].nunique().min()
    name = "ViT" if model == "vit" else model
    return _done(fig, f"Line plot of {name} test accuracy against {LABELS.get(axis, axis)} for "
                      f"{study[axis].nunique()} values.",
                 f"Mirrors one axis of the paper's Appendix D.2 (Fig. 8): {name} runs that differ only in {axis}"
                 + (f", {seeds} seeds each; the band is a 95% interval over seeds." if seeds > 1 else ", one seed each."))


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
    sns.lineplot(data=data, x="train_size", y=metric, hue="model", style="model",
                 marker="o", errorbar=("ci", 95), ax=ax)
    ax.set_xscale("log", base=2)
    ax.set(xlabel=LABELS["train_size"], ylabel=label)
    return _done(fig, f"Line plot of {label} against training set size on a log axis for {_families(data)}.",
                 ("Mirrors the paper's Fig. 3" if metric == "test_accuracy" else "Mirrors the paper's Fig. 4 (linear few-shot)")
                 + ": nested, stratified subsets of one training pool, each family trained for the same steps.")


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
    sns.pointplot(data=study, x="lr", y="test_accuracy", hue="pool", dodge=0.2, errorbar=("ci", 95), ax=ax)
    ax.set(xlabel="learning rate", ylabel="test accuracy")
    return _done(fig, "Point plot of ViT test accuracy by learning rate, class token against average pooling.",
                 "Mirrors the paper's Appendix D.3 (Fig. 9): both heads work, but each wants its own learning rate.")


def fits_table(df: pd.DataFrame):
    """Saturating power laws of test error against training images (each family's data-size
    study) and against compute and parameters (each ViT scaling direction), where a study has
    at least MIN_FIT_POINTS distinct values, with 95% bootstrap intervals."""
    from vitlab import scaling
    from vitlab.studies import scaling_directions

    sets = [(f"{model}: training set size", one_factor_study(df, "train_size", model), "train_size")
            for model in sorted(ok_runs(df)["model"].unique())]
    directions = scaling_directions(df)
    for direction, part in (directions.groupby("direction") if not directions.empty else []):
        sets += [(f"vit: scaling {direction}", part, "train_flops"), (f"vit: scaling {direction}", part, "n_params")]
    rows = []
    for study, runs, x in sets:
        if runs.empty or runs[x].nunique() < MIN_FIT_POINTS:
            continue
        fit = scaling.fit_saturating_power_law(runs[x], runs["test_error"])
        top = runs[x].max() * 10
        low, high = fit.band([top])
        rows.append({"study": study, "x": AXIS_NAMES[x], "runs": len(runs),
                     "b": _interval(fit.b, fit.intervals["b"]),
                     "e_inf": _interval(fit.e_inf, fit.intervals["e_inf"]),
                     "a": f"{fit.a:.3g}", "c": f"{fit.c:.3g}",
                     "error at 10x the largest x": f"{fit.predict([top])[0]:.3f} [{low[0]:.3f}, {high[0]:.3f}]"})
    if not rows:
        return Missing(f"No study has runs at {MIN_FIT_POINTS} or more distinct values of data size, compute or "
                       "parameters: run params/data_size.yaml, params/depth.yaml or params/width.yaml to fit "
                       "scaling laws.")
    return pd.DataFrame(rows).style.hide(axis="index")


def _interval(value: float, interval) -> str:
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def recommendation(df: pd.DataFrame) -> str:
    """Which scaling direction the runs favour per unit of compute, as a markdown paragraph."""
    from vitlab import scaling
    from vitlab.studies import scaling_directions

    runs = scaling_directions(df)
    trends = {}
    for direction, group in (runs.groupby("direction") if not runs.empty else []):
        if direction != "all" and group["train_flops"].nunique() >= 2:
            trends[direction] = scaling.trend_per_decade(group["train_flops"], group["test_error"])
    if len(trends) < 2:
        return ("*Not enough runs to compare scaling directions: run params/scaling_all.yaml "
                "(depth, width and patch size from one base).*")
    ranked = sorted(trends.items(), key=lambda kv: kv[1].slope)
    lines = [f"- **{d}**: test error {t.slope:+.3f} per 10x compute (95% interval {t.interval[0]:+.3f} to "
             f"{t.interval[1]:+.3f}, {t.n_points} runs)" for d, t in ranked]
    best, second = ranked[0], ranked[1]
    clear = best[1].interval[1] < second[1].slope
    budget = runs["train_flops"].max() * 10
    return ("For more compute (say 10x the largest run here, " f"{budget:.2g} FLOPs), the runs favour scaling "
            f"**{best[0]}**" + (" (its interval clears the next direction's trend)" if clear
                                 else f", though not clearly ahead of {second[0]} (the intervals overlap)")
            + ":\n\n" + "\n".join(lines))


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
    """The paper's Table 2: each family's best run, its accuracies and its cost."""
    runs = ok_runs(df)
    if runs.empty:
        return Missing("No successful runs yet.")
    best = runs.loc[runs.groupby("model")["test_accuracy"].idxmax()]
    cols = ["model", "run_id", "depth", "width", "patch_size", "train_size", "n_params", "test_accuracy",
            "fewshot_10", "linear_probe", "train_exaflops", "wall_time_s"]
    return best[cols].rename(columns={"fewshot_10": "10-shot (transfer)", "linear_probe": "linear probe (transfer)",
                                      "train_exaflops": "train EFLOPs"}).style.format(
        {"n_params": "{:,.0f}", "test_accuracy": "{:.3f}", "10-shot (transfer)": "{:.3f}",
         "linear probe (transfer)": "{:.3f}", "train EFLOPs": "{:.3g}", "wall_time_s": "{:.0f}",
         "depth": "{:.0f}", "width": "{:.0f}", "patch_size": "{:.0f}", "train_size": "{:,.0f}"},
        na_rep="–").hide(axis="index")


def runs_table(df: pd.DataFrame):
    columns = ["run_id", "status", "model", "depth", "width", "heads", "mlp_dim", "patch_size",
               "train_size", "seed", "n_params", "flops_per_image", "train_flops", "test_accuracy",
               "wall_time_s", "images_per_s"]
    table = df[columns].sort_values(["model", "train_flops"], na_position="last")
    return table.style.format({"depth": "{:.0f}", "width": "{:.0f}", "heads": "{:.0f}", "mlp_dim": "{:.0f}",
                               "patch_size": "{:.0f}", "n_params": "{:,.0f}", "flops_per_image": "{:.3g}",
                               "train_flops": "{:.3g}", "test_accuracy": "{:.3f}",
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


def inside_best_vit(results_dir, df: pd.DataFrame) -> list:
    """The report's look inside the most accurate ViT: a caption, then the four pictures."""
    from IPython.display import Markdown

    from vitlab import inspect, results

    best = results.best_run(_with_weights(results_dir, df))
    if best is None:
        return [Missing("No successful ViT run with saved weights: run a sweep with ViTs to fill this section.")]
    cfg, model = results.load_model(results_dir, best)
    images, x = inspect.sample_images(cfg, 8)
    accuracy = df.loc[df["run_id"] == best, "test_accuracy"].item()
    position, near = inside_position(model)
    return [Markdown(f"The most accurate ViT, run `{best}` (depth {cfg.depth}, width {cfg.width}, patch "
                     f"{cfg.patch_size}, position embedding `{cfg.pos_embed}`, test accuracy {accuracy:.3f}). "
                     f"Draw the same for any run with `notebooks/inspect.ipynb`."),
            inside_filters(model), position, Markdown(neighbour_note(near)),
            inside_attention_distance(model, x), inside_rollout(model, images, x)]


def position_embedding_variants(results_dir, df: pd.DataFrame) -> list:
    """Paper Table 8: test accuracy by position-embedding variant, and each variant's similarity
    grid (its most accurate run) with the neighbour-vs-distant figures."""
    from IPython.display import Markdown

    from vitlab import results

    runs = ok_runs(df)
    runs = runs[runs["model"] == "vit"]
    if runs["pos_embed"].nunique() < 2:
        return [Missing("No ViT runs differ in pos_embed: run params/pos_embed.yaml to fill this section.")]
    rows, items = [], []
    for variant, group in runs.groupby("pos_embed"):
        row = {"pos_embed": variant, "runs": len(group), "mean test accuracy": group["test_accuracy"].mean(),
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
