import pytest

from vitlab.run.config import ConfigError, RunConfig


def test_run_id_is_stable_and_content_addressed():
    a = RunConfig.from_dict({"depth": 2, "lr": 0.001})
    assert a.run_id == RunConfig.from_dict({"lr": 0.001, "depth": 2}).run_id
    assert len(a.run_id) == 12 and int(a.run_id, 16) >= 0
    assert a.run_id != RunConfig.from_dict({"depth": 3, "lr": 0.001}).run_id
    # Defaults and an empty params dict are the same run.
    assert RunConfig().run_id == RunConfig.from_dict({}).run_id


def test_int_and_float_spellings_hash_alike():
    assert RunConfig.from_dict({"lr": 1}).run_id == RunConfig.from_dict({"lr": 1.0}).run_id
    # YAML 1.1 reads 1e-3 as a string.
    assert RunConfig.from_dict({"lr": "1e-3"}).lr == 0.001


def test_resnet_drops_vit_only_fields():
    a = RunConfig.from_dict({"model": "resnet", "depth": 8, "patch_size": 4, "heads": 8})
    b = RunConfig.from_dict({"model": "resnet", "depth": 8, "patch_size": 14})
    assert a.patch_size is None and a.heads is None and a.pool is None and a.pos_embed is None
    assert a.cnn_depth is None and a.stem == "small"
    assert a.run_id == b.run_id


@pytest.mark.parametrize("values, field, text", [
    ({"patch_size": 5}, "patch_size", "does not divide the 28 px images"),
    ({"width": 64, "heads": 5}, "heads", "not divisible by heads 5"),
    ({"dept": 3}, "dept", "unknown field"),
    ({"depth": "deep"}, "depth", "must be a int"),
    ({"depth": True}, "depth", "must be a int"),
    ({"depth": 0}, "depth", "must be >= 1"),
    ({"model": "cnn"}, "model", "not one of vit, resnet"),
    ({"dataset": "imagenet"}, "dataset", "not one of"),
    ({"train_size": 3501}, "train_size", "3,500 training images (4,000 less a validation split of 500)"),
    ({"lr": -1.0}, "lr", "must be > 0"),
    ({"lr": "fast"}, "lr", "must be a float"),
    ({"pool": "max"}, "pool", "not one of token, avg"),
    ({"warmup": 1.5}, "warmup", "[0, 1)"),
    ({"label_smoothing": 1.0}, "label_smoothing", "[0, 1)"),
    ({"steps": -1}, "steps", ">= 0"),
    ({"preset": "vit-xl/16"}, "preset", "unknown preset"),
    ({"preset": "vit-b/16"}, "patch_size", "16 does not divide the 28 px images"),
    ({"model": "resnet", "depth": 10}, "depth", "6n+2"),
    ({"model": "resnet", "stem": "imagenet", "depth": 34}, "depth", "26, 50, 101, 152"),
    ({"model": "resnet", "depth": 8, "stem": "tiny"}, "stem", "not one of small, imagenet"),
    ({"model": "hybrid", "cnn_depth": 9, "patch_size": 1}, "cnn_depth", "6n+2"),
    ({"model": "hybrid", "patch_size": 2}, "patch_size", "does not divide the 7x7 feature map"),
    # timm rounds ResNet-v2 channels up to multiples of 8: width 4 built a model whose stem and first block disagreed.
    ({"model": "resnet", "depth": 8, "width": 4}, "width", "multiples of 8 (8, 16, 24, 32, ...), got 4"),
    ({"model": "hybrid", "patch_size": 1, "cnn_width": 12}, "cnn_width", "multiples of 8"),
    ({"model": "hybrid", "patch_size": 1, "image_size": 30}, "image_size", "not a multiple"),
    ({"pos_embed": "rope"}, "pos_embed", "not one of learn, learn2d, sincos2d, none"),
    ({"pos_embed": "sincos2d", "width": 66, "heads": 2}, "pos_embed", "divisible by 4"),
])
def test_invalid_values_raise_one_line_errors(values, field, text):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(values)
    assert err.value.field == field
    message = str(err.value)
    assert message.startswith(f"{field}: ") and text in message and "\n" not in message


def test_patch_size_error_lists_allowed_values():
    with pytest.raises(ConfigError, match=r"allowed: 1, 2, 4, 7, 14, 28"):
        RunConfig.from_dict({"patch_size": 8})


def test_preset_fills_fields_and_explicit_fields_override():
    cfg = RunConfig.from_dict({"preset": "vit-b/16", "image_size": 32, "depth": 2})
    assert (cfg.width, cfg.heads, cfg.mlp_dim, cfg.patch_size, cfg.depth) == (768, 12, 3072, 16, 2)
    assert cfg.input_size == 32
    hybrid = RunConfig.from_dict({"preset": "hybrid-micro/1"})
    assert hybrid.model == "hybrid" and hybrid.cnn_depth == 8 and hybrid.patch_size == 1


def test_a_field_added_later_keeps_earlier_run_ids():
    # Pinned before `compile` existed: records written then still name the same runs.
    assert RunConfig().run_id == "2da472fe4b2a"
    assert RunConfig.from_dict({"preset": "vit-ti/16", "image_size": 224}).run_id == "3db86dc8da9f"
    assert RunConfig.from_dict({"compile": True}).run_id != RunConfig().run_id


def test_an_unknown_field_names_the_closest_allowed_one_first():
    with pytest.raises(ConfigError, match=r"^depht: unknown field; did you mean depth\? \(allowed: model, "):
        RunConfig.from_dict({"depht": 6})
    with pytest.raises(ConfigError, match=r"^zzz: unknown field \(allowed: "):
        RunConfig.from_dict({"zzz": 6})


def test_a_notebooks_namespace_builds_the_config_from_its_fields():
    namespace = {"depth": 2, "lr": 0.001, "results_dir": "x", "pd": object()}  # and what else a notebook holds
    assert RunConfig.from_namespace(namespace) == RunConfig.from_dict({"depth": 2, "lr": 0.001})
    with pytest.raises(ConfigError, match="depth"):
        RunConfig.from_namespace({"depth": 0})



def test_heads_not_set_follow_the_width_and_the_mlp_size_stays():
    assert RunConfig().heads == 4 and RunConfig.from_dict({}).run_id == "2da472fe4b2a"
    assert [RunConfig.from_dict({"width": w}).heads for w in (16, 32, 48, 128, 192, 50)] == [1, 2, 3, 8, 12, 2]
    assert RunConfig.from_dict({"width": 128}).mlp_dim == 128
    assert RunConfig.from_dict({"width": 128, "heads": 2}).heads == 2
    assert RunConfig.from_dict({"model": "resnet", "depth": 8, "width": 8}).heads is None
    assert RunConfig.from_dict({"preset": "vit-ti/16", "image_size": 224, "width": 384}).heads == 3  # set by the preset
