"""Tables of the report, each a function of the results DataFrame: a pandas Styler, or a Missing
note naming the params file that would fill it."""
from __future__ import annotations

import numpy as np
import pandas as pd

from vitlab.report import crossing, scaling
from vitlab.report.figures import Missing
from vitlab.report.points import compare
from vitlab.report.studies import CONFIG_FIELDS, ok_runs, scaling_directions
from vitlab.study import results

AXIS_NAMES = {"train_size": "training images", "train_flops": "training FLOPs", "n_params": "parameters"}
# Column headers in words; FLOP columns get their unit from their values (_flops_unit).
HEADERS = {"run_id": "run_id", "train_size": "training images", "n_params": "parameters", "patch_size": "patch",
           "mlp_dim": "MLP", "cnn_depth": "CNN depth", "cnn_width": "CNN width", "val_accuracy": "validation accuracy",
           "test_accuracy": "test accuracy", "wall_time_s": "time (s)", "images_per_s": "images/s",
           "fewshot_10": "10-shot (transfer)", "linear_probe": "linear probe (transfer)"}
FLOPS = {"flops_per_image": "forward {} per image", "train_flops": "training {}"}
UNITS = ((1e18, "EFLOPs"), (1e15, "PFLOPs"), (1e12, "TFLOPs"), (1e9, "GFLOPs"), (1e6, "MFLOPs"))


def _flops_unit(values: pd.Series) -> tuple[float, str]:
    """The largest unit in which the column's median is at least 1 (8.19e-07 EFLOPs reads as 0.819 TFLOPs)."""
    median = np.nanmedian(values.astype(float)) if values.notna().any() else 0.0
    return next(((scale, name) for scale, name in UNITS if median >= scale), (1.0, "FLOPs"))


def _three_figures(value: float) -> str:
    """About three significant figures without an exponent: 0.819, 7.11, 819, 4,650."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _readable(table: pd.DataFrame, formats: dict[str, str]):
    """A table with headers in words, FLOPs in a unit that suits them, and formats by field name."""
    table = table.copy()
    formats = dict(formats)
    renames = {}
    for column, header in FLOPS.items():
        if column in table:
            scale, unit = _flops_unit(table[column])
            table[column] = table[column].astype(float) / scale
            renames[column] = header.format(unit)
            formats[column] = _three_figures
    renames |= {c: HEADERS.get(c, c) for c in table.columns if c not in renames}
    formats = {renames.get(c, c): f for c, f in formats.items() if c in table}
    return table.rename(columns=renames).style.format(formats, na_rep="–").hide(axis="index")


def fits_table(df: pd.DataFrame, size_laws: dict | None = None):
    """Saturating power laws of test error against training images (each family's data-size
    study) and against compute and parameters (each ViT scaling direction), fitted to study
    points (seed means), with 95% intervals, the prediction at 10x with its band, and each fit's
    back-test (refitted without its largest x, scored on them in log units). size_laws: the
    data-size laws as crossing.laws(df) fits them, where the caller has them (the report fits
    them once for this table, Fig. 3 and the crossings)."""
    size_laws = crossing.laws(df) if size_laws is None else size_laws
    fitted = [(f"{model}: training set size", *size_laws[model], "train_size")
              for model in sorted(ok_runs(df)["model"].unique())]
    directions = scaling_directions(df)
    for direction, part in (directions.groupby("direction") if not directions.empty else []):
        comparison = compare(part)
        fitted += [(f"vit: scaling {direction}", comparison.scaling_law(comparison.points, x), comparison.points, x)
                   for x in ("train_flops", "n_params")]
    rows = []
    for study, fit, points, x in fitted:
        if fit is None:
            continue
        top = points[x].max() * 10
        low, high = fit.band([top])
        rows.append({"study": study, "x": AXIS_NAMES[x], "points": len(points), "runs": int(points["seeds"].sum()),
                     "law": fit.form, "b": _interval(fit.b, fit.intervals["b"]),
                     "e_inf": _interval(fit.e_inf, fit.intervals["e_inf"]),
                     "a": f"{fit.a:.3g}", "c": f"{fit.c:.3g}",
                     "error at 10x the largest x": f"{fit.predict([top])[0]:.3f} [{low[0]:.3f}, {high[0]:.3f}]"
                                                   + ("" if fit.supported([top])[0] else " (beyond the back-tests)"),
                     "back-test": fit.backtest_summary(), "noise": fit.noise})
    if not rows:
        return Missing(f"No study has runs at {scaling.MIN_X} or more distinct values of data size, "
                       "compute or parameters: run params/data_size.yaml, params/depth.yaml or params/width.yaml to "
                       "fit scaling laws.")
    return pd.DataFrame(rows).style.hide(axis="index")


def _interval(value: float, interval) -> str:
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


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
    table = table.rename(columns={c: c.removeprefix("chosen_") + " (chosen)" for c in chosen})
    return _readable(table, {"val_accuracy": "{:.3f}", "test_accuracy": "{:.3f}", "train_size": "{:,.0f}",
                             "depth": "{:.0f}", "width": "{:.0f}", "patch_size": "{:.0f}"})


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
                     "pre-training FLOPs": source["train_flops"] if source is not None else None,
                     "pre-training accuracy": source["test_accuracy"] if source is not None else None,
                     "fine-tuned on": run["dataset"], "fine-tuned accuracy": run["test_accuracy"],
                     "from scratch": scratch_accuracy.get(config_key(run))})
    return pd.DataFrame(rows).style.format(
        {"pre-training FLOPs": "{:.3g}", "pre-training accuracy": "{:.3f}", "fine-tuned accuracy": "{:.3f}",
         "from scratch": "{:.3f}"}, na_rep="–").hide(axis="index")


def models_table(df: pd.DataFrame):
    """The paper's Table 1: the distinct architectures run, with their size and cost."""
    runs = ok_runs(df)
    if runs.empty:
        return Missing("No successful runs yet.")
    cols = ["model", "depth", "width", "mlp_dim", "heads", "patch_size", "cnn_depth", "cnn_width", "n_params",
            "flops_per_image"]
    table = runs[cols].drop_duplicates().sort_values(["model", "n_params"])
    return _readable(table, {"n_params": "{:,.0f}", **dict.fromkeys(
        ("depth", "width", "mlp_dim", "heads", "patch_size", "cnn_depth", "cnn_width"), "{:.0f}")})


def best_by_family(df: pd.DataFrame):
    """The paper's Table 2: each family's best run on validation on each dataset, at the largest
    training set size every family ran there (trained from scratch; validation accuracies of
    different datasets or sizes are not comparable), its accuracies and its cost."""
    runs = ok_runs(df)
    if "pretrained" in runs:
        runs = runs[runs["pretrained"].isna()]
    best = []
    for dataset, part in runs.groupby("dataset"):
        common = set.intersection(*(set(g["train_size"]) for _, g in part.groupby("model")))
        if common:  # else each family's best at any size, as the training images column shows
            part = part[part["train_size"] == max(common)]
        best += [results.best_run(part, model, dataset) for model in sorted(part["model"].unique())]
    best = runs[runs["run_id"].isin([b for b in best if b])].sort_values(["dataset", "model"])
    if best.empty:
        return Missing("No successful runs trained from scratch with a validation accuracy yet.")
    cols = ["dataset", "model", "run_id", "depth", "width", "patch_size", "train_size", "n_params", "val_accuracy",
            "test_accuracy", "fewshot_10", "linear_probe", "train_flops", "wall_time_s"]
    return _readable(best[cols], {"n_params": "{:,.0f}", "val_accuracy": "{:.3f}", "test_accuracy": "{:.3f}",
                                  "fewshot_10": "{:.3f}", "linear_probe": "{:.3f}", "wall_time_s": "{:.0f}",
                                  "depth": "{:.0f}", "width": "{:.0f}", "patch_size": "{:.0f}", "train_size": "{:,.0f}"})


def runs_table(df: pd.DataFrame):
    """Every run, sorted by family, dataset, training set size and compute."""
    columns = ["run_id", "status", "model", "dataset", "depth", "width", "heads", "mlp_dim", "patch_size",
               "train_size", "seed", "n_params", "flops_per_image", "train_flops", "val_accuracy", "test_accuracy",
               "wall_time_s", "images_per_s"]
    table = df[columns].sort_values(["model", "dataset", "train_size", "train_flops", "seed"], na_position="last")
    return _readable(table, {"depth": "{:.0f}", "width": "{:.0f}", "heads": "{:.0f}", "mlp_dim": "{:.0f}",
                             "patch_size": "{:.0f}", "train_size": "{:,.0f}", "seed": "{:.0f}", "n_params": "{:,.0f}",
                             "val_accuracy": "{:.3f}", "test_accuracy": "{:.3f}", "wall_time_s": "{:.1f}",
                             "images_per_s": "{:,.0f}"})
