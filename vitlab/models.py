"""Models of a run, all built from timm's classes."""
from __future__ import annotations

import math
from collections import OrderedDict
from functools import partial

from timm.layers import GroupNormAct, StdConv2d
from timm.models.resnetv2 import ResNetV2
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from vitlab.config import RunConfig
from vitlab.data import DATASETS


def build_model(cfg: RunConfig) -> nn.Module:
    spec = DATASETS[cfg.dataset]
    if cfg.model == "vit":
        return VisionTransformer(
            img_size=spec.image_size, patch_size=cfg.patch_size, in_chans=spec.channels,
            num_classes=spec.num_classes, embed_dim=cfg.width, depth=cfg.depth,
            num_heads=cfg.heads, mlp_ratio=cfg.mlp_dim / cfg.width,
            global_pool=cfg.pool, class_token=cfg.pool == "token")
    if cfg.model == "resnet":
        return _bit_resnet(cfg.depth, cfg.width, spec.channels, spec.num_classes)
    raise ValueError(f"model: unknown {cfg.model!r}")


def _bit_resnet(blocks_per_stage: int, width: int, in_chans: int, num_classes: int) -> ResNetV2:
    """BiT-style ResNet-v2 (GroupNorm + weight standardisation) for small images.

    Three stages of pre-activation basic blocks at width, 2x and 4x channels.
    """
    model = ResNetV2(
        layers=[blocks_per_stage] * 3, channels=(width, 2 * width, 4 * width),
        num_classes=num_classes, in_chans=in_chans, stem_chs=width, basic=True, bottle_ratio=1.0,
        conv_layer=StdConv2d,
        norm_layer=partial(GroupNormAct, num_groups=math.gcd(32, width)))
    # timm's stems all downsample 4x (7x7/2 conv + pool), which leaves nothing of a
    # 28 px digit; a 3x3 stride-1 stem, as CIFAR ResNets use, keeps full resolution.
    model.stem = nn.Sequential(OrderedDict(conv=StdConv2d(in_chans, width, 3, stride=1, padding=1)))
    return model
