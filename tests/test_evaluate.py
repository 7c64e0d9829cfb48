"""Few-shot linear evaluation against scikit-learn, and transfer metrics of a trained run."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import RidgeClassifier

from vitlab.run import data, datasets, evaluate, train
from vitlab.run.config import RunConfig
from vitlab.run.models import build_model


def sklearn_accuracy(x_train, y_train, x_test, y_test, l2_reg):
    """big_vision's recipe spelled out with scikit-learn: standardise with the shot set's
    statistics, append a constant feature of 100, ridge onto {-1, 1} targets with no intercept."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-5

    def prepare(x):
        return np.hstack([(x - mean) / std, np.full((len(x), 1), 100.0)])

    clf = RidgeClassifier(alpha=l2_reg, solver="cholesky", fit_intercept=False).fit(prepare(x_train), y_train)
    return (clf.predict(prepare(x_test)) == y_test).mean()


@pytest.mark.parametrize("l2_reg", [0.01, 1.0, 1024.0])
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
    split = datasets.load_splits("digits")
    f_train = evaluate.features(model, data.normalise(split.train_images, split)).numpy()
    f_test = evaluate.features(model, data.normalise(split.test_images, split)).numpy()
    y_train, y_test = split.train_labels.numpy(), split.test_labels.numpy()
    assert f_train.shape == (1200, 32)
    for n, l2_reg in ((50, 1024.0), (1200, 1024.0), (200, 10.0)):
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
    assert datasets.spec(tiny_cfg.dataset).transfer == "digits"
    assert set(result.transfer) == {"fewshot_1", "fewshot_5", "fewshot_10", "fewshot_25", "linear_probe", "notes"}
    assert all(0 <= result.transfer[k] <= 1 for k in result.transfer if k != "notes")
    assert result.transfer["notes"] is None
    assert result.transfer["linear_probe"] > 0.3  # ten classes: chance is 0.1


def test_shot_sets_are_nested_seeded_and_skip_counts_a_class_cannot_fill():
    labels = np.repeat(np.arange(5), 20)  # 20 per class, as flowers102 has
    sets = evaluate.shot_sets(labels, (1, 5, 10, 25), seed=7)
    assert sorted(sets) == [1, 5, 10]  # 25 shots skipped, not an error
    assert set(sets[1]) <= set(sets[5]) <= set(sets[10])
    assert all((np.bincount(labels[idx]) == k).all() for k, idx in sets.items())
    assert np.array_equal(sets[5], evaluate.shot_sets(labels, (5,), seed=7)[5])
    assert not np.array_equal(sets[5], evaluate.shot_sets(labels, (5,), seed=8)[5])


def test_a_shot_count_above_the_smallest_class_is_noted_and_the_run_still_succeeds(tiny_cfg, monkeypatch):
    """Found by reading: a 25-shot draw on a class with fewer images raised after training, so
    the run was recorded failed (flowers102 has 20 training images per class)."""
    split = datasets.load_splits("digits")
    keep = np.concatenate([np.flatnonzero(split.train_labels.numpy() == c)[:20] for c in range(10)])
    small = datasets.Split(split.train_images[keep], split.train_labels[keep], split.val_images, split.val_labels,
                           split.test_images, split.test_labels, split.mean, split.std)
    real_load = datasets.load_splits
    monkeypatch.setattr(datasets, "load_splits", lambda name: small if name == "digits" else real_load(name))
    result = train.fit(tiny_cfg, build_model(tiny_cfg), progress=False)
    assert result.status == "ok" and result.transfer["fewshot_25"] is None
    assert result.transfer["fewshot_10"] is not None
    assert result.transfer["notes"] == "25-shot evaluation skipped: the smallest class of digits has 20 training images"


def test_fewshot_averages_three_draws_from_the_runs_seed_stream(tiny_cfg):
    model = build_model(tiny_cfg)
    a = evaluate.transfer_metrics(tiny_cfg, model)
    b = evaluate.transfer_metrics(RunConfig.from_dict({**tiny_cfg.to_dict(), "seed": 5}), model)
    assert a == evaluate.transfer_metrics(tiny_cfg, model)  # seeded
    assert a["fewshot_1"] != b["fewshot_1"] and a["linear_probe"] == b["linear_probe"]  # the draws follow the seed
