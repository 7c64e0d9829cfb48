"""BiT's ResNet-v2 (timm's ResNetV2 with GroupNorm and weight standardisation): CIFAR-style 6n+2
layers with the small stem, BiT's bottleneck ResNets with the ImageNet stem."""
from __future__ import annotations

from vitlab.run.checks import ConfigError, choice
from vitlab.run.families.family import STEMS, Family, resnet_depth_error, resnet_width_error


def check(cfg) -> None:
    choice("stem", cfg.stem, STEMS)
    if why := resnet_depth_error(cfg.depth, cfg.stem):
        raise ConfigError("depth", why)
    if why := resnet_width_error(cfg.width):
        raise ConfigError("width", why)


def build(image_size, channels, num_classes, depth, width, stem):
    from vitlab.run.layers import bit_resnet

    return bit_resnet(depth, width, stem, channels, num_classes)


FAMILY = Family("resnet", "ResNet", ("stem",), check, build, defaults={"stem": "small"}, channels_last=True)
