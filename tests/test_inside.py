"""vitlab.report.inside against independent computations on tiny timm ViTs and hand-made attention."""
import math

import pytest
import torch

from vitlab.report import inside
from vitlab.run.models import create

SHAPE = dict(image_size=28, channels=1, num_classes=10, depth=3, width=32, heads=4, mlp_dim=64, patch_size=7)


def tiny_vit(pool="token", pos_embed="learn", seed=0):
    torch.manual_seed(seed)
    model = create("vit", pool=pool, pos_embed=pos_embed, **SHAPE).eval()
    with torch.no_grad():  # sharpen attention so that rollout is far from uniform
        for blk in model.blocks:
            blk.attn.qkv.weight.mul_(8)
    return model


def raw_attention(model, images):
    """The attention probabilities timm itself computes, unfused, caught at its attention dropout."""
    caught = []
    for blk in model.blocks:
        blk.attn.fused_attn = False
        blk.attn.attn_drop.register_forward_hook(lambda m, i, o: caught.append(o.double()))
    with torch.no_grad():
        model(images)
    return caught


@pytest.mark.parametrize("pool", ["token", "avg"])
def test_attention_maps_and_rollout_match_a_step_by_step_recomputation(pool):
    images = torch.randn(3, 1, 28, 28)
    model = tiny_vit(pool)
    fused = [blk.attn.fused_attn for blk in model.blocks]
    maps = inside.attention_maps(model, images)
    rollout = inside.attention_rollout(model, images)
    assert [blk.attn.fused_attn for blk in model.blocks] == fused  # the forward pass is untouched

    raw = raw_attention(model, images)
    assert len(maps) == len(raw) == 3
    for ours, theirs in zip(maps, raw):
        torch.testing.assert_close(ours.double(), theirs, atol=1e-5, rtol=0)
    assert raw[0].max() > 5 / raw[0].shape[-1]  # far from uniform attention

    n = raw[0].shape[-1]
    expected = torch.eye(n, dtype=torch.float64).expand(3, n, n)
    for a in raw:  # layer by layer: mean over heads, add identity, renormalise, multiply
        layer = a.mean(1) + torch.eye(n, dtype=torch.float64)
        layer = layer / layer.sum(-1, keepdim=True)
        expected = torch.stack([layer[b] @ expected[b] for b in range(3)])
    prefix = 1 if pool == "token" else 0
    rows = expected[:, 0, prefix:] if pool == "token" else expected[:, :, :].mean(1)
    assert rollout.shape == (3, 4, 4)
    torch.testing.assert_close(rollout.double(), rows.reshape(3, 4, 4), atol=1e-5, rtol=0)


def brute_distance(weights, grid, stride):
    """Per-query weighted distance, averaged over queries, by explicit loops."""
    rows, cols = grid
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    per_query = [sum(weights[q][k] * math.dist(cells[q], cells[k]) * stride for k in range(len(cells)))
                 for q in range(len(cells))]
    return sum(per_query) / len(per_query)


@pytest.mark.parametrize("pattern", ["uniform", "self", "fixed"])
def test_attention_distance_is_exact_on_hand_made_patterns(pattern):
    grid, stride = (3, 4), 7.0
    p = 12
    if pattern == "uniform":
        weights = torch.full((p, p), 1 / p, dtype=torch.float64)
    elif pattern == "self":
        weights = torch.eye(p)
    else:  # every query looks at patch 5 (row 1, column 1)
        weights = torch.zeros(p, p)
        weights[:, 5] = 1
    attention = weights.expand(2, 3, p, p)  # two images, three heads, all the same
    got = inside.attention_distance(attention, grid, stride)
    expected = brute_distance(weights.tolist(), grid, stride)
    assert got.shape == (3,)
    torch.testing.assert_close(got, torch.full((3,), expected, dtype=torch.float64), atol=1e-12, rtol=0)
    if pattern == "self":
        assert expected == 0
    if pattern == "fixed":  # by hand: mean distance of the 12 cells from (1, 1), in patches
        by_hand = sum(math.hypot(r - 1, c - 1) for r in range(3) for c in range(4)) / 12 * 7
        assert got[0].item() == pytest.approx(by_hand, abs=1e-12)


def test_mean_attention_distance_has_a_value_per_layer_and_head():
    images = torch.randn(2, 1, 28, 28)
    distance = inside.mean_attention_distance(tiny_vit(), images)
    assert distance.shape == (3, 4)
    max_pixels = math.dist((0, 0), (21, 21))  # patch centres 7 px apart on a 4x4 grid
    assert (distance >= 0).all() and (distance <= max_pixels).all()


@pytest.mark.parametrize("pos_embed", ["learn", "learn2d", "sincos2d"])
def test_position_similarity_is_a_cosine_grid(pos_embed):
    sim = inside.position_similarity(tiny_vit(pos_embed=pos_embed))
    assert sim.shape == (4, 4, 4, 4)
    flat = sim.reshape(16, 16)
    torch.testing.assert_close(flat.diagonal(), torch.ones(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat, flat.T)
    assert (flat <= 1 + 1e-5).all() and (flat >= -1 - 1e-5).all()
    if pos_embed == "sincos2d":  # fixed sin-cos: near patches are more alike by construction
        near = inside.neighbour_similarity(sim)
        assert near["neighbour"] > near["distant"]


def test_neighbour_similarity_on_a_hand_made_grid():
    rows = cols = 4
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    sim = torch.tensor([[1 - math.dist(a, b) / 10 for b in cells] for a in cells]).reshape(4, 4, 4, 4)
    near = inside.neighbour_similarity(sim)
    assert near["neighbour"] == pytest.approx(0.9)
    distant = [1 - math.dist(a, b) / 10 for a in cells for b in cells if math.dist(a, b) >= 2]
    assert near["distant"] == pytest.approx(sum(distant) / len(distant))


def test_without_position_embedding_or_attention_errors_are_clear():
    with pytest.raises(ValueError, match="no position embedding"):
        inside.position_similarity(tiny_vit(pos_embed="none"))
    resnet = create("resnet", image_size=28, channels=1, num_classes=10, depth=8, width=8)
    with pytest.raises(TypeError, match="got ResNetV2"):
        inside.attention_rollout(resnet, torch.randn(1, 1, 28, 28))
    hybrid = create("hybrid", image_size=28, channels=1, num_classes=10, depth=1, width=16, heads=2, mlp_dim=32,
                    patch_size=1, cnn_depth=8, cnn_width=8)
    with pytest.raises(ValueError, match="hybrid"):
        inside.patch_embedding_components(hybrid)
    assert inside.attention_rollout(hybrid, torch.randn(2, 1, 28, 28)).shape == (2, 7, 7)


def test_patch_embedding_components_are_ordered_image_tiles():
    tiles, explained = inside.patch_embedding_components(tiny_vit(), k=8)
    assert tiles.shape == (8, 1, 7, 7)
    assert (explained[:-1] >= explained[1:]).all() and 0 < explained.sum() <= 1 + 1e-6
    flat = tiles.reshape(8, -1)
    torch.testing.assert_close(flat @ flat.T, torch.eye(8), atol=1e-5, rtol=0)  # orthonormal


def test_without_a_run_id_the_best_vit_on_validation_with_saved_weights_is_chosen(tmp_path):
    from vitlab.run.config import RunConfig
    from vitlab.run.models import build_model
    from vitlab.study import results

    with pytest.raises(FileNotFoundError, match="no successful ViT run with saved weights"):
        inside.choose_run(tmp_path)
    kept, better, resnet = (RunConfig.from_dict(v) for v in ({"depth": 1}, {"depth": 2},
                                                             {"model": "resnet", "depth": 8, "width": 8}))
    for cfg, val in ((kept, 0.5), (better, 0.9), (resnet, 0.95)):  # the better ViT saved no weights
        results.write(tmp_path, results.make_record(cfg, status="ok") | {"val_accuracy": val})
    for cfg in (kept, resnet):
        results.save_weights(tmp_path, cfg.run_id, build_model(cfg))
    assert inside.choose_run(tmp_path) == kept.run_id
    assert inside.choose_run(tmp_path, better.run_id) == better.run_id



def test_a_patch_grid_too_small_to_judge_is_said_so_not_read_as_unlike_the_paper():
    """The best ViT looked inside had patch 14 on 28 px (a 2x2 grid), and the report concluded
    'closer patches are not more similar here, unlike the paper'."""
    from vitlab.report import sections
    from vitlab.run.config import RunConfig
    from vitlab.run.models import build_model

    near = {"neighbour": 0.1, "distant": 0.2}
    coarse = build_model(RunConfig.from_dict({"patch_size": 14}))
    fine = build_model(RunConfig.from_dict({"patch_size": 7}))
    assert "2x2 patch grid there are too few patches" in sections.neighbour_note(near, coarse)
    assert "unlike the paper" not in sections.neighbour_note(near, coarse)
    assert "unlike the paper" in sections.neighbour_note(near, fine)
