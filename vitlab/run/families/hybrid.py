"""The paper's hybrid: a ViT over the feature map of a BiT ResNet trunk (timm's HybridEmbed)."""
from __future__ import annotations

from vitlab.run.checks import ConfigError, choice
from vitlab.run.families import vit
from vitlab.run.families.family import (
    STEMS,
    Family,
    check_transformer_fields,
    check_transformer_grid,
    resnet_depth_error,
    resnet_width_error,
)

# How much the trunk downsamples: the small stem keeps full resolution and stages 2 and 3 halve
# it; the ImageNet stem quarters it, then stages 2 and 3 halve it.
STRIDE = {"small": 4, "imagenet": 16}


def check(cfg) -> None:
    choice("stem", cfg.stem, STEMS)
    if why := resnet_depth_error(cfg.cnn_depth or 0, cfg.stem):
        raise ConfigError("cnn_depth", why)
    if why := resnet_width_error(cfg.cnn_width):
        raise ConfigError("cnn_width", why)
    check_transformer_fields(cfg)
    stride = STRIDE[cfg.stem]
    if cfg.input_size % stride:
        raise ConfigError("image_size", f"the {cfg.stem}-stem hybrid trunk downsamples {stride}x; "
                          f"{cfg.input_size} px is not a multiple")
    size = cfg.input_size // stride
    check_transformer_grid(cfg, size, f"the {size}x{size} feature map")


def build(image_size, channels, num_classes, depth, width, heads, mlp_dim, patch_size, pool, pos_embed, pre_logits,
          stem, cnn_depth, cnn_width):
    from functools import partial

    from timm.models.vision_transformer_hybrid import HybridEmbed

    from vitlab.run.layers import bit_resnet

    trunk = bit_resnet(cnn_depth, cnn_width, stem, channels, 0, hybrid=True)
    return vit.build(image_size, channels, num_classes, depth, width, heads, mlp_dim, patch_size, pool, pos_embed,
                     pre_logits, embed_layer=partial(HybridEmbed, backbone=trunk))


FAMILY = Family("hybrid", "hybrid", (*vit.FAMILY.fields, "stem", "cnn_depth", "cnn_width"), check, build,
                defaults={"stem": "small", "cnn_depth": 8, "cnn_width": 8}, channels_last=True)
