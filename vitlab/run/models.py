"""Models of a run, all built from timm's classes (ViT, BiT ResNet-v2 and hybrids), and a fine-tuning
run's start from another run's weights."""
from __future__ import annotations

import math
from collections import OrderedDict
from functools import partial

import torch
from timm.layers import GroupNormAct, StdConv2d, StdConv2dSame, resample_abs_pos_embed
from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed
from timm.models.resnetv2 import ResNetV2
from timm.models.vision_transformer import VisionTransformer
from timm.models.vision_transformer_hybrid import HybridEmbed
from torch import nn

from vitlab.run import datasets, seeds
from vitlab.run.families import BIT_LAYERS, HYBRID_STRIDE


def create(model: str, image_size: int, channels: int, num_classes: int, depth: int, width: int,
           heads: int | None = None, mlp_dim: int | None = None, patch_size: int | None = None,
           pool: str | None = "token", pos_embed: str | None = "learn", pre_logits: bool | None = False,
           stem: str | None = "small", cnn_depth: int | None = None, cnn_width: int | None = None) -> nn.Module:
    """Build one model from architecture fields (already validated by RunConfig)."""
    if model == "resnet":
        return _resnet(depth, width, stem, channels, num_classes)
    embed_layer = None
    if model == "hybrid":
        trunk = _resnet(cnn_depth, cnn_width, stem, channels, 0, hybrid=True)
        embed_layer = partial(HybridEmbed, backbone=trunk)
    vit = VisionTransformer(
        img_size=image_size, patch_size=patch_size, in_chans=channels, num_classes=num_classes,
        embed_dim=width, depth=depth, num_heads=heads, mlp_ratio=mlp_dim / width,
        global_pool=pool, class_token=pool == "token",
        pos_embed="learn" if pos_embed in ("learn", "sincos2d") else "none",
        **({"embed_layer": embed_layer} if embed_layer else {}))
    grid = vit.patch_embed.grid_size
    if pos_embed == "sincos2d":
        table = build_sincos2d_pos_embed(list(grid), width).to(vit.pos_embed.device)
        prefix = torch.zeros(1, vit.num_prefix_tokens, width, device=table.device)
        vit.pos_embed = nn.Parameter(torch.cat([prefix, table[None]], 1), requires_grad=False)
    elif pos_embed == "learn2d":
        vit.patch_embed = LearnedPos2d(vit.patch_embed, grid, width)
    if pre_logits:
        # The paper's optional pre-logits layer (dense + tanh); timm's ViT dropped it.
        vit.head = nn.Sequential(OrderedDict(pre_logits=nn.Linear(width, width), act=nn.Tanh(),
                                             head=nn.Linear(width, num_classes)))
    return vit


class LearnedPos2d(nn.Module):
    """Learned 2-D position embedding (paper Appendix D.4): a row and a column table of
    D/2 each, concatenated per patch. timm has only 1-D learned tables, so it is written here
    as a wrapper that adds it to the patch embedding's output."""

    def __init__(self, patch_embed: nn.Module, grid: tuple[int, int], dim: int):
        super().__init__()
        self.inner = patch_embed
        self.num_patches = patch_embed.num_patches
        self.grid_size = patch_embed.grid_size
        self.rows = nn.Parameter(torch.randn(grid[0], 1, dim // 2) * 0.02)
        self.cols = nn.Parameter(torch.randn(1, grid[1], dim // 2) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.inner(x)
        h, w = self.rows.shape[0], self.cols.shape[1]
        table = torch.cat([self.rows.expand(h, w, -1), self.cols.expand(h, w, -1)], -1)
        return tokens + table.reshape(1, h * w, -1)


def position_parameters(model: nn.Module) -> set[str]:
    """Names of a model's position-embedding parameters, whichever variant it has: none of them
    gets weight decay (timm exempts its 1-D `pos_embed`; the 2-D tables must be treated alike,
    or the Table 8 comparison measures the regulariser, not the embedding)."""
    names = {name for name, module in model.named_modules() if isinstance(module, LearnedPos2d)}
    out = {f"{name}.{table}" for name in names for table in ("rows", "cols")}
    return out | ({"pos_embed"} if isinstance(getattr(model, "pos_embed", None), nn.Parameter) else set())


def _resnet(depth: int, width: int, stem: str, in_chans: int, num_classes: int, hybrid: bool = False) -> ResNetV2:
    """BiT-style ResNet-v2 (GroupNorm + weight standardisation) through timm's ResNetV2.

    small stem: CIFAR-style 6n+2 layers, three stages of basic blocks at width, 2x, 4x.
    imagenet stem: BiT's bottleneck ResNets, stage widths 4x..32x the stem's.
    A hybrid keeps the trunk only, with no head; with the ImageNet stem, stage 4's blocks
    move into stage 3 as in the paper.
    """
    trunk = {"num_classes": 0, "global_pool": ""} if hybrid else {"num_classes": num_classes}
    if stem == "small":
        n = (depth - 2) // 6
        model = ResNetV2(
            layers=[n] * 3, channels=(width, 2 * width, 4 * width),
            in_chans=in_chans, stem_chs=width, basic=True, bottle_ratio=1.0, conv_layer=StdConv2d,
            norm_layer=partial(GroupNormAct, num_groups=math.gcd(32, width)), **trunk)
        # timm's stems all downsample 4x (7x7/2 conv + pool), which leaves nothing of a
        # 28 px digit; a 3x3 stride-1 stem, as CIFAR ResNets use, keeps full resolution.
        model.stem = nn.Sequential(OrderedDict(conv=StdConv2d(in_chans, width, 3, stride=1, padding=1)))
        return model
    layers = BIT_LAYERS[depth]
    if hybrid:
        return ResNetV2(layers=(*layers[:2], layers[2] + layers[3]), channels=tuple(width * 4 * 2 ** i for i in range(3)),
                        in_chans=in_chans, stem_chs=width, preact=False, stem_type="same",
                        conv_layer=StdConv2dSame, **trunk)
    return ResNetV2(layers=layers, channels=tuple(width * 4 * 2 ** i for i in range(4)), in_chans=in_chans,
                    stem_chs=width, stem_type="fixed", conv_layer=StdConv2d,
                    norm_layer=partial(GroupNormAct, num_groups=math.gcd(32, width)), **trunk)


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
