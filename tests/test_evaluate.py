"""Few-shot linear evaluation against scikit-learn, and transfer metrics of a trained run."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import RidgeClassifier

from vitlab import data, evaluate, train
from vitlab.config import RunConfig
from vitlab.models import build_model


def sklearn_accuracy(x_train, y_train, x_test, y_test, l2_reg):
    clf = RidgeClassifier(alpha=l2_reg, solver="cholesky").fit(x_train, y_train)
    return (clf.predict(x_test) == y_test).mean()


@pytest.mark.parametrize("l2_reg", [0.01, 1.0, 100.0])
@pytest.mark.parametrize("n_per_class", [1, 5, 25])
def test_fewshot_linear_matches_ridge_classifier_on_random_features(l2_reg, n_per_class):
    rng = np.random.default_rng(n_per_class)
    centres = rng.normal(size=(10, 64))
    y_train = np.repeat(np.arange(10), n_per_class)
    y_test = rng.integers(0, 10, 500)
    x_train = centres[y_train] + rng.normal(scale=2.0, size=(len(y_train), 64))
    x_test = centres[y_test] + rng.normal(scale=2.0, size=(500, 64))
    ours = evaluate.fewshot_linear(x_train, y_train, x_test, y_test, l2_reg)
    assert 0.1 < ours < 1.0  # neither trivial nor chance
    assert ours == pytest.approx(sklearn_accuracy(x_train, y_train, x_test, y_test, l2_reg), abs=0.005)


def test_fewshot_linear_matches_ridge_classifier_on_real_features():
    cfg = RunConfig(dataset="digits", depth=1, width=32, heads=2, mlp_dim=64, patch_size=4, steps=0)
    model = build_model(cfg)
    split = data.load("digits")
    f_train = evaluate.features(model, data.normalise(split.train_images, split)).numpy()
    f_test = evaluate.features(model, data.normalise(split.test_images, split)).numpy()
    y_train, y_test = split.train_labels.numpy(), split.test_labels.numpy()
    assert f_train.shape == (1397, 32)
    for n, l2_reg in ((50, 1.0), (1397, 1.0), (200, 10.0)):
        ours = evaluate.fewshot_linear(f_train[:n], y_train[:n], f_test, y_test, l2_reg)
        assert ours == pytest.approx(sklearn_accuracy(f_train[:n], y_train[:n], f_test, y_test, l2_reg), abs=0.005)
    assert evaluate.fewshot_linear(f_train, y_train, f_test, y_test) > 0.5  # random features still separate digits


def test_features_go_through_the_pre_logits_layer():
    cfg = RunConfig(dataset="digits", depth=1, width=32, heads=2, mlp_dim=64, patch_size=4, pre_logits=True)
    model = build_model(cfg)
    x = torch.randn(3, 1, 8, 8)
    f = evaluate.features(model, x)
    assert f.shape == (3, 32) and f.abs().max() <= 1  # tanh output
    torch.testing.assert_close(model.head.head(f), model.eval()(x))


def test_a_trained_run_records_fewshot_and_linear_probe_on_its_transfer_dataset(tiny_cfg):
    result = train.fit(tiny_cfg, build_model(tiny_cfg), progress=False)
    assert data.spec(tiny_cfg.dataset).transfer == "digits"
    assert set(result.transfer) == {"fewshot_1", "fewshot_5", "fewshot_10", "fewshot_25", "linear_probe"}
    assert all(0 <= v <= 1 for v in result.transfer.values())
    assert result.transfer["linear_probe"] > 0.3  # ten classes: chance is 0.1
