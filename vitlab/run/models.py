"""A run's model, built by its family (vitlab.run.families) from timm's classes, and a fine-tuning
run's start from another run's weights."""
from __future__ import annotations

import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

from vitlab.run import datasets, seeds
from vitlab.run.families import FAMILIES
from vitlab.run.layers import LearnedPos2d


def create(model: str, image_size: int, channels: int, num_classes: int, depth: int, width: int,
           heads: int | None = None, mlp_dim: int | None = None, patch_size: int | None = None,
           pool: str | None = "token", pos_embed: str | None = "learn", pre_logits: bool | None = False,
           stem: str | None = "small", cnn_depth: int | None = None, cnn_width: int | None = None) -> nn.Module:
    """Build one model from architecture fields (already validated by RunConfig), by its family."""
    family = FAMILIES[model]
    given = {"heads": heads, "mlp_dim": mlp_dim, "patch_size": patch_size, "pool": pool, "pos_embed": pos_embed,
             "pre_logits": pre_logits, "stem": stem, "cnn_depth": cnn_depth, "cnn_width": cnn_width}
    return family.build(image_size, channels, num_classes, depth, width, **{k: given[k] for k in family.fields})


def position_parameters(model: nn.Module) -> set[str]:
    """Names of a model's position-embedding parameters, whichever variant it has: none of them
    gets weight decay (timm exempts its 1-D `pos_embed`; the 2-D tables must be treated alike,
    or the Table 8 comparison measures the regulariser, not the embedding)."""
    names = {name for name, module in model.named_modules() if isinstance(module, LearnedPos2d)}
    out = {f"{name}.{table}" for name in names for table in ("rows", "cols")}
    return out | ({"pos_embed"} if isinstance(getattr(model, "pos_embed", None), nn.Parameter) else set())


def build_model(cfg) -> nn.Module:
    """The model of a run (a RunConfig), shaped for its dataset, initialised from its seed."""
    spec = datasets.spec(cfg.dataset)
    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
        torch.manual_seed(seeds.derive(cfg.seed, "init"))
        return create(image_size=cfg.input_size, channels=spec.channels, num_classes=spec.num_classes, **cfg.arch())


def fine_tune_from(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Start model from another model's trained weights (a state dict), as the paper fine-tunes:
    every weight but the head's, which is replaced by a zero-initialised one; a learned 1-D
    position embedding is resampled (timm) to a new patch grid. source names the weights' run."""
    own = model.state_dict()
    head = {k for k in own if k.startswith("head.")}
    state = {k: v for k, v in state.items() if k not in head}
    if "pos_embed" in state and "pos_embed" in own and state["pos_embed"].shape != own["pos_embed"].shape:
        prefix = getattr(model, "num_prefix_tokens", 0)
        state["pos_embed"] = resample_abs_pos_embed(state["pos_embed"], list(model.patch_embed.grid_size),
                                                    num_prefix_tokens=prefix)
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        raise ValueError(f"pretrained: {source}'s {mismatched[0]} has shape {tuple(state[mismatched[0]].shape)}, "
                         f"this model's is {tuple(own[mismatched[0]].shape)}; fine-tune the same architecture")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - head:
        raise ValueError(f"pretrained: {source} is another architecture "
                         f"({(unexpected or sorted(set(missing) - head))[0]} does not match)")
    classifier = model.get_classifier()
    if isinstance(classifier, nn.Sequential):  # the pre-logits head: its last layer
        classifier = classifier.head
    with torch.no_grad():
        for p in classifier.parameters():
            p.zero_()
