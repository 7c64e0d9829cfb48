"""The Vision Transformer (timm's VisionTransformer), with the paper's position-embedding variants
and optional pre-logits layer."""
from __future__ import annotations

from vitlab.run.families.family import (
    Family,
    check_transformer_fields,
    check_transformer_grid,
)


def check(cfg) -> None:
    check_transformer_fields(cfg)
    check_transformer_grid(cfg, cfg.input_size, f"the {cfg.input_size} px images")


def build(image_size, channels, num_classes, depth, width, heads, mlp_dim, patch_size, pool, pos_embed, pre_logits,
          embed_layer=None):
    """embed_layer: a hybrid's ResNet trunk in place of the patch embedding."""
    from collections import OrderedDict

    import torch
    from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed
    from timm.models.vision_transformer import VisionTransformer
    from torch import nn

    from vitlab.run.layers import LearnedPos2d

    vit = VisionTransformer(
        img_size=image_size, patch_size=patch_size, in_chans=channels, num_classes=num_classes,
        # timm sizes the MLP as int(width * mlp_ratio), which floors mlp_dim / width back to one
        # less for many pairs (width 28, mlp_dim 61: 60); half a unit more floors to mlp_dim itself.
        embed_dim=width, depth=depth, num_heads=heads, mlp_ratio=(mlp_dim + 0.5) / width,
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


FAMILY = Family("vit", "ViT", ("heads", "mlp_dim", "patch_size", "pool", "pos_embed", "pre_logits"), check, build)
