"""Report figures: which runs form a study, and how to draw it."""
from __future__ import annotations

from dataclasses import dataclass, fields

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from vitlab.config import RunConfig

CONFIG_FIELDS = tuple(f.name for f in fields(RunConfig))
# Axes that a sweep moves together with another (a width sweep also scales heads
# and MLP size), so they do not split that axis's study into one-point groups.
COUPLED = {"width": ("heads", "mlp_dim")}
LABELS = {"depth": "depth (Transformer blocks)", "width": "width (hidden size D)",
          "patch_size": "patch size (px)", "train_size": "training images"}

sns.set_theme(style="whitegrid", context="notebook")


@dataclass
class Missing:
    """What a report section shows when no runs fill it."""
    message: str

    def _repr_markdown_(self) -> str:
        return f"*{self.message}*"


def ok_runs(df: pd.DataFrame) -> pd.DataFrame:
    out = df[df["status"] == "ok"].copy()
    out["test_error"] = 1 - out["test_accuracy"]
    return out


def one_factor_study(df: pd.DataFrame, axis: str, model: str | None = None) -> pd.DataFrame:
    """The largest set of successful runs that differ only in `axis` (and seed).

    Runs are grouped by every other config field; the group that spans the most
    values of `axis` is the study. Seeds stay in, so repeated runs give error bars.
    """
    runs = ok_runs(df)
    if model is not None:
        runs = runs[runs["model"] == model]
    keys = [f for f in CONFIG_FIELDS if f not in (axis, "seed", *COUPLED.get(axis, ()))]
    best = None
    for _, group in runs.groupby(keys, dropna=False, sort=False):
        score = (group[axis].nunique(), len(group))
        if best is None or score > best[0]:
            best = (score, group)
    if best is None or best[0][0] < 2:
        return runs.iloc[:0]
    return best[1].sort_values(axis)


def _figure(title: str):
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.set_title(title)
    return fig, ax


def _done(fig, tight: bool = True):
    if tight:
        fig.tight_layout()
    plt.close(fig)  # the notebook shows the returned figure once, not again at cell end
    return fig


def error_vs_compute(df: pd.DataFrame):
    runs = ok_runs(df)
    if runs.empty:
        return Missing("No successful runs yet.")
    fig, ax = _figure("Test error vs training compute")
    sns.scatterplot(data=runs, x="train_flops", y="test_error", hue="model", style="model", s=70, ax=ax)
    ax.set_xscale("log")
    ax.set(xlabel="training compute (FLOPs)", ylabel="test error")
    return _done(fig)


def accuracy_vs(df: pd.DataFrame, axis: str, model: str = "vit"):
    study = one_factor_study(df, axis, model)
    if study.empty:
        return Missing(f"No two successful {model} runs differ only in {axis}: "
                       f"add a grid over {axis} to the params file to fill this section.")
    fig, ax = _figure(f"{model.upper() if model == 'vit' else model} test accuracy vs {axis}")
    sns.lineplot(data=study, x=axis, y="test_accuracy", marker="o", errorbar=("ci", 95), ax=ax)
    if axis in ("width", "train_size"):
        ax.set_xscale("log", base=2)
    ax.set(xlabel=LABELS.get(axis, axis), ylabel="test accuracy")
    return _done(fig)


def accuracy_vs_train_size_by_model(df: pd.DataFrame):
    studies = [one_factor_study(df, "train_size", m) for m in sorted(ok_runs(df)["model"].unique())]
    studies = [s for s in studies if not s.empty]
    if not studies:
        return Missing("No model family has runs that differ only in train_size: "
                       "add a grid over train_size and model to fill this section.")
    data = pd.concat(studies)
    fig, ax = _figure("Test accuracy vs training set size, by model family")
    sns.lineplot(data=data, x="train_size", y="test_accuracy", hue="model", style="model",
                 marker="o", errorbar=("ci", 95), ax=ax)
    ax.set_xscale("log", base=2)
    ax.set(xlabel=LABELS["train_size"], ylabel="test accuracy")
    return _done(fig)


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
    return _done(fig)


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
    return _done(fig, tight=False)


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
    return _done(fig)


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
    return _done(fig)


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
    return _done(fig)


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


def inside_best_vit(results_dir, df: pd.DataFrame) -> list:
    """The report's look inside the most accurate ViT: a caption, then the four pictures."""
    from IPython.display import Markdown

    from vitlab import inspect, results

    best = results.best_run(df[df["run_id"].map(lambda r: results.weights_path(results_dir, r).is_file())])
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
        best = results.best_run(group[group["run_id"].map(lambda r: results.weights_path(results_dir, r).is_file())])
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
