"""What a model family declares (its fields, defaults, checks, constructor and traits), and the
rules that more than one family shares. Plain data and checks: no torch here."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vitlab.run.checks import ConfigError, choice, divisors

STEMS = ("small", "imagenet")
POOLS = ("token", "avg")
POS_EMBEDS = ("learn", "learn2d", "sincos2d", "none")
# Bottleneck blocks per stage of the BiT / ImageNet ResNets, by depth.
BIT_LAYERS = {26: (2, 2, 2, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


@dataclass(frozen=True)
class Family:
    """One model family, as timm registers a model: everything vitlab needs to know of it.

    fields: the config fields that mean something for it (other runs store them as None, so
    that two runs differing only there share one run id); defaults: values of those fields
    that the default model (a ViT) leaves empty; check(cfg): raises ConfigError for a config
    it cannot build; build(image_size, channels, num_classes, depth, width, **fields): the
    model (it imports torch and timm when called); channels_last: its convolutions run
    fastest in that layout on a GPU.
    """
    name: str
    label: str  # how the report names it
    fields: tuple[str, ...]
    check: Callable
    build: Callable
    defaults: dict = field(default_factory=dict)
    channels_last: bool = False


def resnet_depth_error(depth: int, stem: str) -> str | None:
    """Why depth is not a valid ResNet depth for this stem, or None."""
    if stem == "small" and (depth < 8 or (depth - 2) % 6):
        return f"a small-stem ResNet has depth 6n+2 (8, 14, 20, 26, 32, 44, 56, ...), got {depth}"
    if stem == "imagenet" and depth not in BIT_LAYERS:
        return f"an ImageNet-stem ResNet has depth {', '.join(map(str, BIT_LAYERS))}, got {depth}"
    return None


def resnet_width_error(width: int | None) -> str | None:
    """Why width is not a valid ResNet-v2 width, or None. timm's ResNetV2 rounds every channel
    count up to a multiple of 8, so any other width would build a model other than the one named
    (and, under the small stem vitlab fits, one whose stem and first block disagree)."""
    if width is None or width < 8 or width % 8:
        return f"timm's ResNet-v2 has channel counts in multiples of 8 (8, 16, 24, 32, ...), got {width}"
    return None


def check_transformer_fields(cfg) -> None:
    for name in ("heads", "mlp_dim", "patch_size"):
        if getattr(cfg, name) is None or getattr(cfg, name) < 1:
            raise ConfigError(name, f"a ViT needs a positive {name}, got {getattr(cfg, name)}")
    choice("pool", cfg.pool, POOLS)
    choice("pos_embed", cfg.pos_embed, POS_EMBEDS)


def check_transformer_grid(cfg, size: int, what: str) -> None:
    """Patches that tile a size x size input (what: how an error names it), and a width the
    heads and the 2-D position embeddings can split."""
    if size % cfg.patch_size:
        raise ConfigError("patch_size", f"{cfg.patch_size} does not divide {what} of {cfg.dataset}"
                          f" (allowed: {', '.join(str(p) for p in divisors(size))})")
    if cfg.width % cfg.heads:
        raise ConfigError("heads", f"width {cfg.width} is not divisible by heads {cfg.heads}")
    if cfg.pos_embed in ("learn2d", "sincos2d") and cfg.width % (4 if cfg.pos_embed == "sincos2d" else 2):
        raise ConfigError("pos_embed", f"{cfg.pos_embed} needs a width divisible by "
                          f"{4 if cfg.pos_embed == 'sincos2d' else 2}, got {cfg.width}")
