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


def _done(fig):
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


def training_curve(history: list[dict], title: str) -> Missing | None:
    """Draw training loss and accuracy per epoch of one run; a note instead when it never trained."""
    if not history:
        return Missing("no training steps, so no training curve")
    long = pd.DataFrame(history).melt("epoch", ["train_loss", "train_accuracy"])
    ax = sns.lineplot(data=long, x="epoch", y="value", hue="variable", marker="o")
    ax.set(title=title, ylabel="")
    return None
