"""A recorded run's weights for use outside vitlab: `model.safetensors` beside a `config.json` in
timm's own Hub layout (written by timm's save_for_hf, so `timm.create_model("local-dir:DIR",
pretrained=True)` builds and loads it with timm alone), a one-run params file that reproduces the
run, and a short model card. Models timm cannot build from a config (vitlab's small-stem ResNet,
the hybrid, the 2-D learned position embedding, the pre-logits layer) are exported with vitlab's
config instead, and the card says what timm lacks."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from vitlab.run import datasets
from vitlab.run.config import RunConfig
from vitlab.run.families import FAMILIES
from vitlab.study import results

# Any registered ViT: its name only picks timm's builder, and model_args set every size.
TIMM_VIT = "vit_tiny_patch16_224"


def timm_lacks(cfg: RunConfig) -> str | None:
    """What timm's own config cannot express of this run's model, or None where it can."""
    if cfg.model == "resnet":
        return ("timm builds no ResNet-v2 with vitlab's 3x3 stride-1 stem" if cfg.stem == "small" else
                "its GroupNorm groups and weight-standardised convolutions are layers, which timm's config.json "
                "cannot record")
    if cfg.model != "vit":
        return f"the {FAMILIES[cfg.model].label}'s ResNet trunk is a module passed to timm's ViT, which a config cannot record"
    if cfg.pos_embed == "learn2d":
        return "timm has no learned 2-D position embedding (a row and a column table, the paper's Appendix D.4)"
    if cfg.pre_logits:
        return "timm's ViT has no pre-logits layer (dense + tanh, the paper's Section 3.1)"
    return None


def timm_args(cfg: RunConfig, channels: int, num_classes: int) -> dict:
    """The VisionTransformer arguments that rebuild a ViT run's model in timm (see families.vit)."""
    return dict(img_size=cfg.input_size, patch_size=cfg.patch_size, in_chans=channels, num_classes=num_classes,
                embed_dim=cfg.width, depth=cfg.depth, num_heads=cfg.heads, mlp_ratio=(cfg.mlp_dim + 0.5) / cfg.width,
                global_pool=cfg.pool, class_token=cfg.pool == "token",
                # A fixed 2-D sin-cos table is stored as the 1-D table's values: the same logits.
                pos_embed="none" if cfg.pos_embed == "none" else "learn")


def export(results_dir: str | Path, run_id: str, out: str | Path) -> Path:
    """Write run_id's weights, config, params file and card to out; returns the card's path."""
    import safetensors.torch
    import timm
    from timm.models import save_for_hf

    cfg, model = results.load_model(results_dir, run_id)
    record = results.read_record(results_dir, run_id)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = datasets.spec(cfg.dataset)
    mean, std = pixel_stats(cfg.dataset)
    lacks = timm_lacks(cfg)
    if lacks is None:
        args = timm_args(cfg, spec.channels, spec.num_classes)
        # The registered ViT's card (ImageNet's input size, normalisation, tag, licence) is not this
        # model's; save_for_hf writes the model's own card, so it is set here whatever timm's version.
        pretrained_cfg = {"input_size": (spec.channels, cfg.input_size, cfg.input_size), "mean": (mean,) * spec.channels,
                          "std": (std,) * spec.channels, "crop_pct": 1.0, "interpolation": "bilinear", "tag": None,
                          "license": None, "num_classes": spec.num_classes}
        twin = timm.create_model(TIMM_VIT, pretrained=False, pretrained_cfg_overlay=pretrained_cfg, **args)
        twin.load_state_dict(model.state_dict(), strict=True)  # the same tensors under timm's own names
        save_for_hf(twin, out, model_config={"label_names": list(map(str, range(spec.num_classes))),
                                             "vitlab": cfg.to_dict()}, model_args=args, safe_serialization=True)
    else:
        safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / "model.safetensors")
        (out / "config.json").write_text(json.dumps({"vitlab": cfg.to_dict(), "mean": mean, "std": std}, indent=2))
    plan = {"name": f"run-{run_id}", "description": f"Reproduces vitlab run {run_id}.", "base": cfg.to_dict()}
    (out / "params.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    card = out / "README.md"
    card.write_text(_card(cfg, record, results_dir, lacks, spec, mean, std))
    return card


def load(directory: str | Path):
    """An export's model built by vitlab (for the models timm cannot build), in eval mode."""
    import safetensors.torch

    from vitlab.run.models import build_model

    cfg = RunConfig.from_dict(json.loads((Path(directory) / "config.json").read_text())["vitlab"])
    model = build_model(cfg)
    model.load_state_dict(safetensors.torch.load_file(Path(directory) / "model.safetensors"))
    return model.eval()


def pixel_stats(dataset: str) -> tuple[float, float]:
    """The mean and std the run's inputs were normalised with (after scaling pixels to [0, 1])."""
    from vitlab.run import data

    return data.stream_stats(dataset) if datasets.spec(dataset).streams else tuple(
        getattr(datasets.load_splits(dataset), k) for k in ("mean", "std"))


def _card(cfg: RunConfig, record: dict, results_dir, lacks: str | None, spec, mean: float, std: float) -> str:
    from scipy import stats

    label = FAMILIES[cfg.model].label
    n, accuracy = spec.test_size, record.get("test_accuracy")
    lines = [f"# vitlab run {cfg.run_id}: a {label} trained on {cfg.dataset}", ""]
    budget = f"{cfg.steps:,} steps" if cfg.steps else f"{cfg.epochs:,} epochs"
    lines.append(f"Trained from {'run ' + cfg.pretrained + ' weights' if cfg.pretrained else 'scratch'} by vitlab on "
                 f"{cfg.train_size:,} training images of {cfg.dataset} ({budget} of batch {cfg.batch_size}, seed "
                 f"{cfg.seed}); {record.get('n_params') or 0:,} parameters, {record.get('train_flops') or 0:.3g} "
                 "training FLOPs.")
    lines.append("")
    if accuracy is not None:
        low, high = stats.binomtest(round(accuracy * n), n).proportion_ci(0.95, method="wilson")
        lines.append(f"- Test accuracy {accuracy:.3f} (95% interval {low:.3f} to {high:.3f}, counting the sampling "
                     f"of the {n:,} test images only: one seed says nothing of seed-to-seed spread).")
        seeds = _other_seeds(results_dir, cfg)
        if seeds:
            lines.append(f"- The same configuration's other recorded seeds scored {', '.join(f'{a:.3f}' for a in seeds)} "
                         "on the test split.")
    for key, what in (("val_accuracy", "Validation accuracy"), ("fewshot_10", "10-shot linear accuracy (transfer)"),
                      ("linear_probe", "Linear-probe accuracy (transfer)")):
        if record.get(key) is not None:
            lines.append(f"- {what} {record[key]:.3f}.")
    lines += ["", "Inputs: " + f"{spec.channels}x{cfg.input_size}x{cfg.input_size} images, pixels scaled to [0, 1], "
              f"then normalised with mean {mean:.4f} and std {std:.4f}; {spec.num_classes} classes.", ""]
    if lacks is None:
        lines += ["## Load it with timm", "", "```python", "import timm", "",
                  'model = timm.create_model("local-dir:/path/to/this/folder", pretrained=True).eval()', "```", "",
                  "`config.json` is timm's own Hub layout (`architecture`, `model_args`, `pretrained_cfg` with the "
                  "normalisation above)."]
        if cfg.pos_embed == "sincos2d":
            lines += ["", "Its position embedding was a fixed 2-D sin-cos table; timm loads the same values as a "
                          "learned 1-D table, so the logits are the same but fine-tuning would train it."]
    else:
        lines += ["## Load it", "", f"timm alone cannot build this model: {lacks}. With vitlab installed:", "",
                  "```python", "from vitlab.study.export import load", "", 'model = load("/path/to/this/folder")',
                  "```", "", "`model.safetensors` holds its state dict; `config.json` its vitlab config."]
    swept = _swept_by(results_dir, cfg.run_id)
    lines += ["", "## Reproduce it", "", (f"It was trained by the sweep of {', '.join(f'`{n}`' for n in swept)}. " if swept else "")
              + f"`vitlab sweep params.yaml` trains the same configuration (run id {cfg.run_id}); the file holds the "
              "whole config.", ""]
    return "\n".join(lines)


def _other_seeds(results_dir, cfg: RunConfig) -> list[float]:
    """Test accuracies of the configuration's other recorded seeds."""
    df = results.load_table(results_dir, warn=False)
    if df.empty:
        return []
    same = df["status"] == "ok"
    for k, v in cfg.to_dict().items():
        if k != "seed":
            same &= df[k].isna() if v is None else df[k] == v
    return sorted(df.loc[same & (df["run_id"] != cfg.run_id), "test_accuracy"].dropna())


def _swept_by(results_dir, run_id: str) -> list[str]:
    """The params files kept in the results directory (results.keep_params) that hold run_id."""
    from vitlab.study.plans import SweepError, load_plan

    out = []
    for name in results.kept_params(results_dir):
        try:
            plan = load_plan(Path(results_dir) / results.PARAMS_DIR / name)
        except (SweepError, ValueError):  # a kept file this vitlab no longer reads names nothing
            continue
        if any(c.run_id == run_id for c in plan.runs):
            out.append(name)
    return out
