"""The torch building blocks more than one family uses: BiT's ResNet-v2 through timm, and the
learned 2-D position embedding timm lacks."""
from __future__ import annotations

import math
from collections import OrderedDict
from functools import partial

import torch
from timm.layers import GroupNormAct, StdConv2d, StdConv2dSame
from timm.models.resnetv2 import ResNetV2
from torch import nn

from vitlab.run.families.family import BIT_LAYERS


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


def bit_resnet(depth: int, width: int, stem: str, in_chans: int, num_classes: int, hybrid: bool = False) -> ResNetV2:
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
