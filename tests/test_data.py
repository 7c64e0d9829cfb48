import numpy as np
import torch
import torch.nn.functional as F

from vitlab.run import data, datasets


def test_mnist5k_has_a_fixed_split():
    split = datasets.load_splits("mnist5k")
    assert split.train_images.shape == (3500, 1, 28, 28) and split.train_images.dtype == torch.uint8
    assert split.val_images.shape == (500, 1, 28, 28) and split.test_images.shape == (1000, 1, 28, 28)
    assert np.bincount(split.val_labels.numpy()).tolist() == [50] * 10  # stratified
    assert sorted(split.test_labels.unique().tolist()) == list(range(10))
    datasets.load_splits.cache_clear()
    again = datasets.load_splits("mnist5k")
    assert torch.equal(again.test_images, split.test_images) and torch.equal(again.val_images, split.val_images)
    assert 0.05 < split.mean < 0.3 and 0.2 < split.std < 0.5


def test_digits_loads_as_uint8_images():
    split = datasets.load_splits("digits")
    assert split.train_images.shape == (1200, 1, 8, 8) and split.val_images.shape[0] == 197
    assert split.test_images.shape[0] == 400
    assert split.train_images.max() == 255


def test_subsets_are_nested_stratified_and_seeded():
    labels = datasets.load_splits("mnist5k").train_labels.numpy()
    small, large = data.subset_indices(labels, 1000, seed=3), data.subset_indices(labels, 2000, seed=3)
    assert set(small) <= set(large) and len(set(large)) == 2000
    proportion = np.bincount(labels) / len(labels)
    for n, idx in ((1000, small), (2000, large)):
        assert np.all(np.abs(np.bincount(labels[idx], minlength=10) - proportion * n) <= 1)
    assert np.array_equal(small, data.subset_indices(labels, 1000, seed=3))
    assert not np.array_equal(small, data.subset_indices(labels, 1000, seed=4))


def _rows(images: torch.Tensor) -> set[bytes]:
    return {bytes(x.numpy().tobytes()) for x in images}


def test_validation_split_is_disjoint_from_every_training_subset_and_the_test_split():
    """Found by reading: every choice was made on the test split, as no validation split existed."""
    _, y_pool, _, _ = datasets.spec("mnist5k").load_arrays()
    train, val = datasets.holdout(y_pool, 500)
    assert len(val) == 500 and not set(train) & set(val) and len(train) + len(val) == 4000
    split = datasets.load_splits("mnist5k")
    val_rows, test_rows = _rows(split.val_images), _rows(split.test_images)
    largest = split.train_images[data.subset_indices(split.train_labels, 3500, seed=0)]
    assert not _rows(largest) & val_rows and not val_rows & test_rows


def test_validation_size_rule_for_datasets_that_name_none():
    assert datasets.spec("cifar10").n_val == 1000 and datasets.spec("cifar10").n_train == 49000  # 2%
    assert datasets.spec("pets").n_val == 185  # 5 per class beats 2% of 3,680
    assert datasets.spec("flowers102").n_val == 408  # at most a fifth of the pool


def test_pixel_stats_are_numpys_float32_stats_without_a_float_copy():
    rng = np.random.default_rng(0)
    # Sizes below, at and well above one chunk, odd ones included, where the summation tree splits.
    for shape in ((7, 1, 8, 8), (1, 1, 1024, 1024), (3001, 3, 17, 17), (49, 3, 224, 224)):
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        scaled = x.astype(np.float32) / 255
        assert datasets.pixel_stats(x) == (float(scaled.mean()), float(scaled.std())), shape


def test_held_statistics_did_not_change():
    # Recorded before the stats were chunked: a run's normalisation, and so its results, are unchanged.
    split = datasets.load_splits("mnist5k")
    assert (split.mean, split.std) == (0.13102780282497406, 0.30821654200553894)


def test_resizing_a_batch_is_bitwise_resizing_the_set_then_gathering():
    x = datasets.load_splits("mnist5k").train_images[:300]
    pick = torch.randperm(300, generator=torch.Generator().manual_seed(0))[:64]
    for size in (56, 224, 14):
        assert torch.equal(data.resize(x, size)[pick], data.resize(x[pick], size))


def test_random_crop_takes_a_window_of_the_padded_image():
    x = datasets.load_splits("mnist5k").train_images[:16]
    crops = data.random_crop(x, 2, torch.Generator().manual_seed(0))
    padded = F.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(16):
        hits = [(a, b) for a in range(5) for b in range(5) if torch.equal(padded[i, :, a:a + 28, b:b + 28], crops[i])]
        assert hits
        offsets.add(hits[0])
    assert len(offsets) > 1
