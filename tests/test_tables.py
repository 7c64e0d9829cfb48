"""The report's tables read without decoding: headers in words, FLOPs in a unit that suits them,
rows sorted, and the best run of each family compared at one training set size."""
from tests.helpers import RESNET, VIT, runs
from vitlab.report import tables

RAW = {"n_params", "flops_per_image", "train_flops", "train_exaflops", "wall_time_s", "images_per_s", "val_accuracy",
       "test_accuracy", "train_size", "mlp_dim", "patch_size"}


def records():
    df = runs(({**VIT, "train_size": 3500}, 0.90, 4.65e12), ({**VIT, "train_size": 2000}, 0.85, 8.19e11),
              ({**RESNET, "train_size": 2000}, 0.95, 4.1e11), ({**VIT, "train_size": 500}, 0.70, 8.19e11))
    return df.assign(flops_per_image=3.5e6, wall_time_s=20.0, images_per_s=1800.0, fewshot_10=None,
                     linear_probe=None, pretrained=None)


def test_best_of_each_family_is_taken_at_one_training_set_size():
    """It compared a ResNet at 2,000 images with a ViT at 3,500."""
    best = tables.best_by_family(records()).data
    assert best["training images"].tolist() == [2000, 2000]
    assert best["model"].tolist() == ["resnet", "vit"]


def test_headers_are_words_and_flops_have_a_unit_that_suits_them():
    """'train EFLOPs' showed 8.19e-07; raw field names were headers."""
    for table in (tables.best_by_family(records()), tables.runs_table(records()), tables.models_table(records())):
        headers = set(table.data.columns)
        assert not headers & RAW, headers & RAW
    shown = tables.runs_table(records())
    assert "training GFLOPs" in shown.data and shown.data["training GFLOPs"].between(1, 10000).all()
    assert "forward MFLOPs per image" in shown.data
    assert ">819<" in shown.to_html() and ">4,650<" in shown.to_html() and "e+" not in shown.to_html()


def test_the_all_runs_table_is_sorted_by_family_then_training_set_size():
    shown = tables.runs_table(records()).data
    assert shown["model"].tolist() == ["resnet", "vit", "vit", "vit"]
    assert shown["training images"].tolist() == [2000, 500, 2000, 3500]
