import json

import pytest
import timm
import torch

from vitlab.cli import main
from vitlab.run.config import RunConfig
from vitlab.run.flops import forward_flops, n_params
from vitlab.run.models import build_model, create, fine_tune_from
from vitlab.run.presets import PRESETS
from vitlab.run.train import fit


def closed_form_vit_flops(depth, width, mlp_dim, patch, image, channels, classes, prefix_tokens=1):
    """Per block 2N(4D^2 + 2 D M) + 4 N^2 D (24 N D^2 + 4 N^2 D when M = 4D), plus embedding and head."""
    patches = (image // patch) ** 2
    n = patches + prefix_tokens
    blocks = depth * (2 * n * (4 * width ** 2 + 2 * width * mlp_dim) + 4 * n * n * width)
    return blocks + 2 * patches * patch * patch * channels * width + 2 * width * classes


def on_meta(name):
    with torch.device("meta"):
        return create(**PRESETS[name]["arch"], **PRESETS[name]["shape"])


@pytest.mark.parametrize("name, table_1", [("vit-b/16", 86e6), ("vit-l/16", 307e6), ("vit-h/14", 632e6)])
def test_param_counts_match_table_1(name, table_1):
    assert abs(n_params(on_meta(name)) - table_1) / table_1 < 0.02


def test_vit_b16_flops_match_timm_reference():
    with torch.device("meta"):
        reference = timm.create_model("vit_base_patch16_224", pretrained=False)
    ours = forward_flops(on_meta("vit-b/16"), (3, 224, 224))
    theirs = forward_flops(reference, (3, 224, 224))
    assert abs(ours - theirs) / theirs < 0.03
    assert 34e9 < ours < 36e9  # 17.6 GMACs, as timm's model card states


@pytest.mark.parametrize("depth, width, heads, mlp, patch, image, channels, classes", [
    (2, 64, 4, 128, 7, 28, 1, 10), (4, 128, 8, 512, 4, 28, 1, 10), (1, 32, 2, 64, 14, 28, 1, 10),
    (12, 768, 12, 3072, 16, 224, 3, 1000), (24, 1024, 16, 4096, 32, 224, 3, 1000)])
def test_measured_vit_flops_match_the_closed_form(depth, width, heads, mlp, patch, image, channels, classes):
    with torch.device("meta"):
        model = create("vit", image, channels, classes, depth, width, heads, mlp, patch)
    measured = forward_flops(model, (channels, image, image))
    expected = closed_form_vit_flops(depth, width, mlp, patch, image, channels, classes)
    assert abs(measured - expected) / expected < 0.02


def test_flop_counting_leaves_fused_attention_on():
    model = build_model(RunConfig())
    fused = [m.fused_attn for m in model.modules() if hasattr(m, "fused_attn")]
    forward_flops(model, (1, 28, 28))
    assert [m.fused_attn for m in model.modules() if hasattr(m, "fused_attn")] == fused


def test_param_count_of_a_tiny_vit_by_hand():
    model = build_model(RunConfig.from_dict(dict(depth=1, width=16, heads=2, mlp_dim=32, patch_size=7)))
    # patch embed, cls token, 17 positions, one block (2 LN, qkv, proj, MLP), final LN, head
    block = 64 + 16 * 48 + 48 + 16 * 16 + 16 + 16 * 32 + 32 + 32 * 16 + 16
    assert n_params(model) == (49 * 16 + 16) + 16 + 17 * 16 + block + 32 + 170


@pytest.mark.parametrize("width, heads, mlp_dim", [(28, 2, 61), (52, 4, 256), (40, 5, 168), (64, 4, 128)])
def test_the_mlp_has_the_size_set_whatever_its_ratio_to_the_width(width, heads, mlp_dim):
    # timm floors width * (mlp_dim / width): for (28, 61) that alone builds an MLP of 60.
    with torch.device("meta"):
        model = create("vit", 28, 1, 10, 2, width, heads, mlp_dim, 7)
    assert [block.mlp.fc1.out_features for block in model.blocks] == [mlp_dim, mlp_dim]


@pytest.mark.parametrize("values", [
    {}, {"pool": "avg"}, {"pos_embed": "learn2d"}, {"pos_embed": "sincos2d"}, {"pos_embed": "none"},
    {"pre_logits": True}, {"model": "resnet", "depth": 8, "width": 8},
    {"preset": "hybrid-micro/1"}, {"image_size": 32, "patch_size": 8},
])
def test_every_family_and_option_trains_a_step(values):
    cfg = RunConfig.from_dict({"depth": 1, "width": 16, "heads": 2, "mlp_dim": 32, "train_size": 64,
                               "steps": 1, "batch_size": 16, **values})
    model = build_model(cfg)
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    result = fit(cfg, model, progress=False)
    assert result.status == "ok" and result.train_steps == 1
    after = [p.detach() for p in model.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(before, after))


def test_position_embedding_variants():
    def vit(pe):
        return build_model(RunConfig.from_dict({"pos_embed": pe}))
    sincos = vit("sincos2d")
    assert not sincos.pos_embed.requires_grad and sincos.pos_embed[0, 0].abs().sum() == 0
    assert vit("none").pos_embed is None
    learn2d = vit("learn2d").patch_embed
    assert learn2d.rows.shape == (4, 1, 32) and learn2d.cols.shape == (1, 4, 32)
    no_pos = vit("none")
    assert n_params(vit("learn")) - n_params(no_pos) == 17 * 64
    assert n_params(vit("learn2d")) - n_params(no_pos) == 4 * 32 + 4 * 32


def test_pre_logits_and_avg_pool():
    model = build_model(RunConfig.from_dict({"pre_logits": True, "pool": "avg"}))
    assert isinstance(model.head.act, torch.nn.Tanh) and model.cls_token is None
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_resnets_and_hybrids_have_the_expected_shapes():
    bit = on_meta("bit-r50x1")
    assert abs(n_params(bit) - 25.5e6) / 25.5e6 < 0.02  # BiT-M R50x1
    hybrid = on_meta("r50+vit-b/1")
    assert hybrid.patch_embed.grid_size == (14, 14)  # 224 px / 16 after the R50 stem and 3 stages
    small = build_model(RunConfig.from_dict({"preset": "hybrid-micro/1"}))
    assert small.patch_embed.grid_size == (7, 7)
    assert small(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_models_command_lists_every_preset(capsys):
    assert main(["models", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(PRESETS)
    assert rows["vit-b/16"]["layers"] == 12 and rows["vit-b/16"]["hidden"] == 768
    assert 85 < rows["vit-b/16"]["params_m"] < 88 and 34 < rows["vit-b/16"]["gflops"] < 36


def test_fine_tuning_takes_every_weight_but_a_zeroed_head():
    source = RunConfig.from_dict({"depth": 1, "width": 16, "heads": 2, "mlp_dim": 32, "patch_size": 7, "seed": 3})
    model = build_model(source)
    for size in (28, 14):  # the same patch grid, then a smaller one (position embedding resampled)
        target = RunConfig.from_dict({**source.to_dict(), "dataset": "digits", "image_size": size,
                                      "train_size": 100, "seed": 0, "pretrained": source.run_id})
        tuned = build_model(target)
        fine_tune_from(tuned, model.state_dict(), "run x")
        assert torch.equal(tuned.blocks[0].attn.qkv.weight, model.blocks[0].attn.qkv.weight)
        assert tuned.head.weight.abs().sum() == 0 and tuned.head.bias.abs().sum() == 0
        assert tuned.pos_embed.shape[1] == 1 + (size // 7) ** 2
    other = RunConfig.from_dict({**source.to_dict(), "width": 32})
    with pytest.raises(ValueError, match="pretrained: run x's .* fine-tune the same architecture"):
        fine_tune_from(build_model(other), model.state_dict(), "run x")
    deeper = RunConfig.from_dict({**source.to_dict(), "depth": 2})
    with pytest.raises(ValueError, match="pretrained: run x is another architecture"):
        fine_tune_from(build_model(deeper), model.state_dict(), "run x")
    resnet = RunConfig.from_dict({"model": "resnet", "depth": 8, "width": 8})
    with pytest.raises(ValueError, match="pretrained: run x"):  # no position embedding to resample
        fine_tune_from(build_model(resnet), model.state_dict(), "run x")


def test_a_family_declared_in_one_place_validates_builds_and_trains(monkeypatch):
    """What adding a family takes: its declaration in the registry; config, models, training and
    evaluation need no change (timm's MLP-Mixer over 4 px patches, sized by depth and width)."""
    from timm.models.mlp_mixer import MlpMixer

    from vitlab.run import families
    from vitlab.run.checks import ConfigError
    from vitlab.run.config import RunConfig
    from vitlab.run.models import build_model
    from vitlab.run.train import fit

    def check(cfg):
        if cfg.input_size % 4:
            raise ConfigError("image_size", f"4 px patches must tile the image, got {cfg.input_size} px")

    def build(image_size, channels, num_classes, depth, width):
        return MlpMixer(num_classes=num_classes, img_size=image_size, in_chans=channels, patch_size=4,
                        num_blocks=depth, embed_dim=width)

    monkeypatch.setitem(families.FAMILIES, "mixer", families.Family("mixer", "Mixer", (), check, build))
    cfg = RunConfig.from_dict({"model": "mixer", "depth": 1, "width": 32, "dataset": "digits", "train_size": 200,
                               "steps": 5, "batch_size": 20})
    assert cfg.heads is None and cfg.arch() == {"model": "mixer", "depth": 1, "width": 32}
    with pytest.raises(ConfigError, match="image_size: 4 px patches must tile the image"):
        RunConfig.from_dict({**cfg.to_dict(), "image_size": 10})
    result = fit(cfg, build_model(cfg), progress=False)
    assert result.status == "ok" and result.train_steps == 5 and result.test_accuracy is not None
    assert families.label("mixer") == "Mixer"


def test_the_presets_counts_vitlab_models_lists_are_what_the_models_measure():
    """`vitlab models` reads the counts from a file so as not to load torch; built again on the meta
    device, every preset's must match (after editing presets.yaml: python -m vitlab.run.presets)."""
    import json

    from vitlab.run import presets

    listed = json.loads(presets.MEASURED.read_text())
    assert list(listed) == list(presets.PRESETS)
    assert {name: presets.measure(name) for name in presets.PRESETS} == listed
