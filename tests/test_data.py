import numpy as np
import torch

from vitlab import data


def test_mnist5k_has_a_fixed_split():
    split = data.load("mnist5k")
    assert split.train_images.shape == (4000, 1, 28, 28) and split.train_images.dtype == torch.uint8
    assert split.test_images.shape == (1000, 1, 28, 28)
    assert sorted(split.test_labels.unique().tolist()) == list(range(10))
    data.load.cache_clear()
    again = data.load("mnist5k")
    assert torch.equal(again.test_images, split.test_images)
    assert 0.05 < split.mean < 0.3 and 0.2 < split.std < 0.5


def test_digits_loads_as_uint8_images():
    split = data.load("digits")
    assert split.train_images.shape == (1397, 1, 8, 8) and split.test_images.shape[0] == 400
    assert split.train_images.max() == 255


def test_subsets_are_nested_stratified_and_seeded():
    labels = data.load("mnist5k").train_labels.numpy()
    small, large = data.subset_indices(labels, 1000, seed=3), data.subset_indices(labels, 2000, seed=3)
    assert set(small) <= set(large) and len(set(large)) == 2000
    proportion = np.bincount(labels) / len(labels)
    for n, idx in ((1000, small), (2000, large)):
        assert np.all(np.abs(np.bincount(labels[idx], minlength=10) - proportion * n) <= 1)
    assert np.array_equal(small, data.subset_indices(labels, 1000, seed=3))
    assert not np.array_equal(small, data.subset_indices(labels, 1000, seed=4))
