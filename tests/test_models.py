import torch

from vitlab.config import RunConfig
from vitlab.flops import forward_flops, n_params
from vitlab.models import build_model


def closed_form_vit_flops(depth, width, patch, image=28, channels=1, classes=10, tokens_extra=1):
    """Per block 24 N D^2 + 4 N^2 D for an MLP of 4 D, plus patch embedding and head."""
    n = (image // patch) ** 2 + tokens_extra
    blocks = depth * (24 * n * width ** 2 + 4 * n * n * width)
    embed = 2 * (image // patch) ** 2 * (patch * patch * channels) * width
    return blocks + embed + 2 * width * classes


def test_vit_and_resnet_classify_28px_digits():
    for values in ({"model": "vit"}, {"model": "resnet", "depth": 1, "width": 8}):
        model = build_model(RunConfig.from_dict(values))
        assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_vit_flops_match_the_closed_form():
    for depth, width, heads, patch in ((2, 64, 4, 7), (4, 128, 8, 4), (1, 32, 2, 14)):
        cfg = RunConfig.from_dict(dict(depth=depth, width=width, heads=heads, mlp_dim=4 * width, patch_size=patch))
        measured = forward_flops(build_model(cfg), (1, 28, 28))
        expected = closed_form_vit_flops(depth, width, patch)
        assert abs(measured - expected) / expected < 0.02, (depth, width, patch, measured, expected)


def test_flop_counting_leaves_fused_attention_on():
    model = build_model(RunConfig())
    fused = [m.fused_attn for m in model.modules() if hasattr(m, "fused_attn")]
    forward_flops(model, (1, 28, 28))
    assert [m.fused_attn for m in model.modules() if hasattr(m, "fused_attn")] == fused


def test_param_count_of_a_known_vit():
    model = build_model(RunConfig.from_dict(dict(depth=1, width=16, heads=2, mlp_dim=32, patch_size=7)))
    # patch embed 49*16+16, cls 16, pos 17*16, block (2 LN 64, qkv 16*48+48, proj 16*16+16,
    # MLP 16*32+32+32*16+16), final LN 32, head 16*10+10
    expected = (49 * 16 + 16) + 16 + 17 * 16 + (64 + 16 * 48 + 48 + 16 * 16 + 16 + 16 * 32 + 32 + 32 * 16 + 16) + 32 + 170
    assert n_params(model) == expected
