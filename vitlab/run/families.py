"""The model families' shapes as plain data: their fields, defaults, choices and depth rules.

No torch or timm here, so that a config validates (and the `vitlab` command refuses a bad
params file) without loading them; vitlab.run.models builds what this describes.
"""
from __future__ import annotations

MODELS = ("vit", "resnet", "hybrid")
# Fields that mean something only for some families; other runs store them as None
# so that two runs differing only there share one run id.
FAMILY_FIELDS = {
    "vit": ("heads", "mlp_dim", "patch_size", "pool", "pos_embed", "pre_logits"),
    "resnet": ("stem",),
    "hybrid": ("heads", "mlp_dim", "patch_size", "pool", "pos_embed", "pre_logits", "stem", "cnn_depth", "cnn_width"),
}
# Defaults of fields that the default model (a ViT) leaves empty.
FAMILY_DEFAULTS = {"stem": "small", "cnn_depth": 8, "cnn_width": 8}
STEMS = ("small", "imagenet")
POS_EMBEDS = ("learn", "learn2d", "sincos2d", "none")
# Bottleneck blocks per stage of the BiT / ImageNet ResNets, by depth.
BIT_LAYERS = {26: (2, 2, 2, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
# How much a hybrid's ResNet trunk downsamples: the small stem keeps full resolution and
# stages 2 and 3 halve it; the ImageNet stem quarters it, then stages 2 and 3 halve it.
HYBRID_STRIDE = {"small": 4, "imagenet": 16}


def resnet_depth_error(depth: int, stem: str) -> str | None:
    """Why depth is not a valid ResNet depth for this stem, or None."""
    if stem == "small" and (depth < 8 or (depth - 2) % 6):
        return f"a small-stem ResNet has depth 6n+2 (8, 14, 20, 26, 32, 44, 56, ...), got {depth}"
    if stem == "imagenet" and depth not in BIT_LAYERS:
        return f"an ImageNet-stem ResNet has depth {', '.join(map(str, BIT_LAYERS))}, got {depth}"
    return None
