"""Inside a trained ViT (paper Section 4.5): position-embedding similarity, patch-embedding
filters, mean attention distance and attention rollout.

Attention weights are recomputed from each block's input with that block's own qkv
projection, caught by forward pre-hooks: the model's forward pass (and its fused
attention kernel) stays exactly as in training.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from vitlab.run import data, datasets
from vitlab.run.config import RunConfig
from vitlab.run.layers import LearnedPos2d
from vitlab.study import results


def choose_run(results_dir, run_id: str | None = None) -> str:
    """run_id, or when None the ViT best on the validation split among the runs of results_dir
    whose weights were saved."""
    if run_id:
        return run_id
    best = results.best_run(results.with_weights(results_dir, results.load_table(results_dir, warn=False)))
    if best is None:
        raise FileNotFoundError(f"{results_dir}: no successful ViT run with saved weights and a validation "
                                "accuracy to look inside; run a sweep with ViTs into it, or set run_id")
    return best


def _vit(model: nn.Module) -> VisionTransformer:
    if not isinstance(model, VisionTransformer):
        raise TypeError(f"model: a ViT or hybrid (timm VisionTransformer) has attention to inspect, "
                        f"got {type(model).__name__}")
    return model


def position_table(model: nn.Module) -> torch.Tensor | None:
    """The position embedding of each patch as a (rows, cols, D) grid; None without one."""
    vit = _vit(model)
    rows, cols = vit.patch_embed.grid_size
    if isinstance(vit.patch_embed, LearnedPos2d):
        inner = vit.patch_embed
        return torch.cat([inner.rows.expand(rows, cols, -1), inner.cols.expand(rows, cols, -1)], -1).detach()
    if vit.pos_embed is None:
        return None
    prefix = 0 if vit.no_embed_class else vit.num_prefix_tokens
    return vit.pos_embed[0, prefix:].detach().reshape(rows, cols, -1)


def position_similarity(model: nn.Module) -> torch.Tensor:
    """Cosine similarity of each patch's position embedding with every other's: (rows, cols, rows, cols)."""
    table = position_table(model)
    if table is None:
        raise ValueError("model: has no position embedding (pos_embed: none), so no similarity to show")
    rows, cols, dim = table.shape
    flat = F.normalize(table.reshape(-1, dim).float(), dim=1)
    return (flat @ flat.T).reshape(rows, cols, rows, cols)


def neighbour_similarity(similarity: torch.Tensor) -> dict[str, float]:
    """Mean similarity of adjacent patches (4-neighbours) against distant ones (at least half the
    grid apart): the paper's 'closer patches tend to have more similar position embeddings'."""
    rows, cols = similarity.shape[:2]
    yy, xx = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    pos = torch.stack([yy.flatten(), xx.flatten()], 1).float()
    dist = torch.cdist(pos, pos)
    flat = similarity.reshape(rows * cols, rows * cols)
    return {"neighbour": flat[dist == 1].mean().item(),
            "distant": flat[dist >= max(rows, cols) / 2].mean().item()}


def patch_embedding_components(model: nn.Module, k: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """The top k principal components of the patch-embedding filters, as (k, C, p, p) image
    tiles, and the fraction of variance each explains (paper Fig. 7 left)."""
    vit = _vit(model)
    embed = vit.patch_embed.inner if isinstance(vit.patch_embed, LearnedPos2d) else vit.patch_embed
    proj = getattr(embed, "proj", None)
    if not isinstance(proj, nn.Conv2d) or getattr(embed, "backbone", None) is not None:
        raise ValueError("model: a hybrid embeds CNN features, not pixels; its filters are not image patches")
    weight = proj.weight.detach().float()  # (D, C, p, p)
    flat = weight.reshape(weight.shape[0], -1)
    flat = flat - flat.mean(0)
    _, s, vh = torch.linalg.svd(flat, full_matrices=False)
    k = min(k, vh.shape[0])
    return vh[:k].reshape(k, *weight.shape[1:]), (s[:k] ** 2) / (s ** 2).sum()


@torch.no_grad()
def attention_maps(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Each block's attention probabilities on normalised images: a list of (B, heads, N, N)."""
    vit = _vit(model)
    inputs: list[torch.Tensor] = []
    hooks = [blk.attn.register_forward_pre_hook(lambda _, args: inputs.append(args[0])) for blk in vit.blocks]
    was_training = vit.training
    vit.eval()
    try:
        vit(images)
    finally:
        for hook in hooks:
            hook.remove()
        vit.train(was_training)
    maps = []
    for blk, x in zip(vit.blocks, inputs):
        attn = blk.attn
        b, n, _ = x.shape
        qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])
        maps.append(((q * attn.scale) @ k.transpose(-2, -1)).softmax(-1))
    return maps


def attention_distance(attention: torch.Tensor, grid: tuple[int, int], stride: float) -> torch.Tensor:
    """Attention-weighted mean distance in pixels between query and key patches, per head.

    attention: (B, heads, P, P) over patch tokens only (prefix tokens removed; each row is
    renormalised to sum to 1). stride: pixels between neighbouring patch centres.
    """
    rows, cols = grid
    yy, xx = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    centres = torch.stack([yy.flatten(), xx.flatten()], 1).double() * stride
    dist = torch.cdist(centres, centres)  # (P, P)
    weights = attention.double()
    weights = weights / weights.sum(-1, keepdim=True)
    return (weights * dist).sum(-1).mean(dim=(0, 2))


def mean_attention_distance(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Mean attention distance in pixels for every layer and head, averaged over images:
    (depth, heads) (paper Fig. 7 right)."""
    vit = _vit(model)
    grid = tuple(vit.patch_embed.grid_size)
    stride = images.shape[-1] / grid[1]
    prefix = vit.num_prefix_tokens
    return torch.stack([attention_distance(a[:, :, prefix:, prefix:], grid, stride)
                        for a in attention_maps(vit, images)])


def attention_rollout(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020; paper Fig. 6), mapped onto the patch grid: (B, rows, cols).

    Per layer: mean over heads, plus the identity for the residual path, rows renormalised;
    the layers multiplied from the first up. The class token's row is read out, or with
    average pooling the mean of the patch tokens' rows.
    """
    vit = _vit(model)
    rollout = None
    for attention in attention_maps(vit, images):
        a = attention.double().mean(1)
        a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = a / a.sum(-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    prefix = vit.num_prefix_tokens
    rows = rollout[:, 0, prefix:] if vit.cls_token is not None else rollout[:, prefix:, prefix:].mean(1)
    return rows.float().reshape(len(images), *vit.patch_embed.grid_size)


def sample_images(cfg: RunConfig, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n test images of a run's dataset at its input size: uint8 for showing and
    normalised float for the model."""
    spec = datasets.spec(cfg.dataset)
    if spec.streams:  # too large to load whole: decode just these
        test = spec.streams()[1]
        split = SimpleNamespace(**dict(zip(("mean", "std"), data.stream_stats(cfg.dataset))))
        images = torch.stack([test[i][0] for i in range(min(n, len(test)))])
    else:
        split = datasets.load_splits(cfg.dataset)
        images = split.test_images[:n]
    if cfg.input_size != images.shape[-1]:
        images = data.resize(images, cfg.input_size)
    return images, data.normalise(images, split)
