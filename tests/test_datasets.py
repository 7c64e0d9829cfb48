"""Each dataset loader on a tiny fixture written in that dataset's real on-disk layout.

torchvision verifies the published files' md5 sums; the fixtures cannot match them, so
only that check is bypassed: the files are found, opened and parsed by the real code.
"""
import pickle

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from vitlab.run import datasets
from vitlab.run.config import ConfigError, RunConfig

RNG = np.random.default_rng(0)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VITLAB_DATA", str(tmp_path))
    for module in ("cifar", "svhn", "flowers102"):
        monkeypatch.setattr(f"torchvision.datasets.{module}.check_integrity", lambda *a, **k: True)
    datasets.load_splits.cache_clear()
    yield tmp_path
    datasets.load_splits.cache_clear()


def pickled(path, obj):
    """The published files are Python 2 pickles; their str keys load as str under latin1, as these do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def check(name, n_pool, n_test, shape, classes):
    """The pool of n_pool images is split into training and validation images; n_test test images."""
    split = datasets.load_splits(name)
    n_val = datasets.spec(name).val_count(n_pool)
    assert split.train_images.shape == (n_pool - n_val, *shape) and split.val_images.shape == (n_val, *shape)
    assert split.test_images.shape == (n_test, *shape)
    assert split.train_images.dtype == split.test_images.dtype == torch.uint8
    assert set(split.train_labels.tolist()) <= set(range(classes)) and 0 < split.std
    return split


def pool_labels(split) -> list[int]:
    return split.train_labels.tolist() + split.val_labels.tolist()


def test_cifar10_batches(data_dir):
    folder = data_dir / "cifar10" / "cifar-10-batches-py"
    images = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        x = RNG.integers(0, 256, (4, 3072), dtype=np.uint8)
        images[name] = x
        pickled(folder / name, {"batch_label": name, "labels": [i % 10] * 4, "data": x, "filenames": ["f.png"] * 4})
    pickled(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    split = check("cifar10", 20, 4, (3, 32, 32), 10)
    # CIFAR rows are 1024 red, then green, then blue values of a 32x32 image.
    assert (split.test_images[0].numpy().reshape(-1) == images["test_batch"][0]).all()
    assert sorted(pool_labels(split)) == sorted(i % 10 for i in range(5) for _ in range(4))
    assert split.test_labels.tolist() == [5] * 4
    from vitlab.run import evaluate

    cfg = RunConfig.from_dict({"dataset": "cifar10", "patch_size": 4, "train_size": 20})
    assert evaluate.transfer_images(cfg) is None  # its transfer dataset, CIFAR-100, is not here


def test_cifar100_files(data_dir):
    folder = data_dir / "cifar100" / "cifar-100-python"
    for name, n in (("train", 6), ("test", 3)):
        pickled(folder / name, {"data": RNG.integers(0, 256, (n, 3072), dtype=np.uint8),
                                "fine_labels": list(range(n)), "coarse_labels": [0] * n})
    pickled(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
    split = check("cifar100", 6, 3, (3, 32, 32), 100)
    assert sorted(pool_labels(split)) == list(range(6))


def test_svhn_mat_files(data_dir):
    folder = data_dir / "svhn"
    folder.mkdir()
    for name, n in (("train", 5), ("test", 2)):
        scipy.io.savemat(folder / f"{name}_32x32.mat", {"X": RNG.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                                                         "y": np.array([[10], [1], [2], [3], [4]][:n])})
    split = check("svhn", 5, 2, (3, 32, 32), 10)
    assert sorted(pool_labels(split)) == [0, 1, 2, 3, 4]  # SVHN's label 10 is the digit 0


def jpeg(path, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)


def test_oxford_pets_folders(data_dir):
    root = data_dir / "pets" / "oxford-iiit-pet"
    lines = {"trainval": ["Abyssinian_1 1 1 1", "beagle_1 2 2 1", "beagle_2 2 2 1"], "test": ["Abyssinian_2 1 1 1"]}
    for split, rows in lines.items():
        for row in rows:
            jpeg(root / "images" / f"{row.split()[0]}.jpg", (30, 40))
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"{split}.txt").write_text("\n".join(rows) + "\n")
    split = check("pets", 3, 1, (3, datasets.PHOTO_SIZE, datasets.PHOTO_SIZE), 37)
    assert sorted(pool_labels(split)) == [0, 1, 1]
    assert (data_dir / "pets" / f"vitlab-{datasets.PHOTO_SIZE}px.pt").is_file()  # decoded once, then cached
    datasets.load_splits.cache_clear()
    assert datasets.load_splits("pets").train_images.equal(split.train_images)


def test_flowers102_mat_files(data_dir):
    root = data_dir / "flowers102" / "flowers-102"
    for i in range(1, 8):
        jpeg(root / "jpg" / f"image_{i:05d}.jpg", (50, 40))
    scipy.io.savemat(root / "imagelabels.mat", {"labels": np.array([[1, 2, 3, 4, 1, 2, 102]])})
    scipy.io.savemat(root / "setid.mat", {"trnid": np.array([[1, 2]]), "valid": np.array([[3, 4]]),
                                          "tstid": np.array([[5, 6, 7]])})
    split = check("flowers102", 4, 3, (3, datasets.PHOTO_SIZE, datasets.PHOTO_SIZE), 102)
    assert sorted(pool_labels(split)) == [0, 1, 2, 3] and split.test_labels.tolist() == [0, 1, 101]


def test_image_folder_tree(tmp_path):
    for part, n in (("train", 3), ("test", 1)):
        for cls in ("cat", "dog"):
            (tmp_path / part / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(RNG.integers(0, 256, (16, 16), dtype=np.uint8), "L").save(tmp_path / part / cls / f"{i}.png")
    name = f"folder:{tmp_path}"
    spec = datasets.spec(name)
    assert (spec.image_size, spec.channels, spec.num_classes, spec.train_pool, spec.test_size) == (16, 1, 2, 6, 2)
    split = check(name, 6, 2, (1, 16, 16), 2)
    assert sorted(pool_labels(split)) == [0, 0, 0, 1, 1, 1]
    cfg = RunConfig.from_dict({"dataset": name, "train_size": 4, "patch_size": 4, "steps": 1, "batch_size": 2})
    assert cfg.input_size == 16
    from vitlab.run import train
    from vitlab.run.models import build_model

    result = train.fit(cfg, build_model(cfg), progress=False)  # a one-channel, two-class ViT trains on it
    assert result.status == "ok" and result.train_steps == 1 and result.transfer["linear_probe"] is None
    with pytest.raises(ConfigError, match="patch_size: 7 does not divide the 16 px images"):
        RunConfig.from_dict({"dataset": name, "train_size": 4, "patch_size": 7})


def test_hugging_face_saved_dataset(tmp_path):
    hf = pytest.importorskip("datasets")
    parts = {}
    for part, n in (("train", 4), ("test", 2)):
        images = [Image.fromarray(RNG.integers(0, 256, (12, 12, 3), dtype=np.uint8)) for _ in range(n)]
        features = hf.Features({"image": hf.Image(), "label": hf.ClassLabel(names=["a", "b", "c"])})
        parts[part] = hf.Dataset.from_dict({"image": images, "label": [i % 3 for i in range(n)]}, features=features)
    hf.DatasetDict(parts).save_to_disk(str(tmp_path / "ds"))
    name = f"hf:{tmp_path / 'ds'}"
    assert datasets.spec(name).num_classes == 3
    split = check(name, 4, 2, (3, 12, 12), 3)
    assert sorted(pool_labels(split)) == [0, 0, 1, 2]


def test_missing_datasets_fail_before_training_in_one_line(data_dir, tmp_path):
    with pytest.raises(datasets.DatasetMissing, match=r"dataset cifar10: .*cifar-10-batches-py not found; download it "
                                                  r"with torchvision.datasets.CIFAR10\(root="):
        datasets.load_splits("cifar10")
    with pytest.raises(ConfigError, match="dataset: needs .*/nowhere/train/<class>/"):
        RunConfig.from_dict({"dataset": f"folder:{tmp_path / 'nowhere'}"})
    with pytest.raises(ConfigError, match="'imagenet21k' is not one of mnist5k, digits, cifar10.*folder:PATH, hf:PATH"):
        RunConfig.from_dict({"dataset": "imagenet21k"})
    assert RunConfig.from_dict({"dataset": "cifar10", "patch_size": 4, "train_size": 1000}).input_size == 32


def test_a_large_image_tree_streams_through_dataloader_workers_to_the_same_run(tmp_path, monkeypatch):
    import torch

    from vitlab.run import train
    from vitlab.run.models import build_model

    # Both runs at torch's count: results differ in their last bits with the thread count.
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))

    for part, n in (("train", 24), ("test", 8)):
        for cls in ("a", "b"):
            (tmp_path / part / cls).mkdir(parents=True)
            for i in range(n // 2):
                Image.fromarray(RNG.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / part / cls / f"{i}.png")
    fields = {"dataset": f"folder:{tmp_path}", "train_size": 20, "patch_size": 4, "depth": 1, "width": 16,
              "heads": 2, "mlp_dim": 32, "steps": 9, "batch_size": 8, "image_size": 16}
    cfg = RunConfig.from_dict(fields)
    cfg_name = cfg.dataset
    held = train.fit(cfg, build_model(cfg), progress=False)
    assert datasets.spec(cfg.dataset).streams is None  # small: held in memory

    monkeypatch.setenv("VITLAB_IN_MEMORY_GB", "0")
    streamed_name = f"folder:{tmp_path}/"  # another name, so the spec is read again under the new limit
    cfg = RunConfig.from_dict({**fields, "dataset": streamed_name})
    assert datasets.spec(streamed_name).streams is not None
    streamed = train.fit(cfg, build_model(cfg), progress=False)
    assert streamed.train_steps == 9 and streamed.images_seen == held.images_seen
    assert (streamed.train_loss, streamed.val_accuracy, streamed.test_accuracy) == \
        (held.train_loss, held.val_accuracy, held.test_accuracy)  # bitwise

    # A subset normalises with the pool's statistics either way, and inspect sees the same images.
    from vitlab.report import inside

    subset = {**fields, "train_size": 12, "steps": 3, "batch_size": 4}
    held_cfg, streamed_cfg = (RunConfig.from_dict({**subset, "dataset": name}) for name in (cfg_name, streamed_name))
    held, streamed = (train.fit(c, build_model(c), progress=False) for c in (held_cfg, streamed_cfg))
    assert (streamed.train_loss, streamed.test_accuracy) == (held.train_loss, held.test_accuracy)
    for a, b in zip(inside.sample_images(held_cfg, n=4), inside.sample_images(streamed_cfg, n=4)):
        assert torch.equal(a, b)


def test_random_cifar_in_the_published_layout_loads_without_its_checksums(tmp_path, monkeypatch):
    from vitlab import random_data

    monkeypatch.setenv("VITLAB_DATA", str(tmp_path))
    random_data.main([str(tmp_path), "--train", "250", "--test", "50"])
    datasets.load_splits.cache_clear()
    try:
        with pytest.raises(datasets.DatasetCorrupt, match="corrupted"):  # torchvision's md5 check, on by default
            datasets.load_splits("cifar10")
        monkeypatch.setenv("VITLAB_NO_CHECKSUM", "1")
        split = check("cifar10", 250, 50, (3, 32, 32), 10)
        assert sorted(set(pool_labels(split))) == list(range(10))
        check("cifar100", 250, 50, (3, 32, 32), 100)
    finally:
        datasets.load_splits.cache_clear()


@pytest.mark.parametrize("checksums", [True, False])
def test_a_corrupt_dataset_is_one_line_naming_its_files_and_how_to_fetch_them(tmp_path, monkeypatch, checksums):
    from vitlab import random_data

    monkeypatch.setenv("VITLAB_DATA", str(tmp_path))
    if not checksums:
        monkeypatch.setenv("VITLAB_NO_CHECKSUM", "1")
    folder = random_data.write_cifar(tmp_path, "cifar10", 250, 50)
    batch = folder / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:1000])  # a download cut short
    datasets.load_splits.cache_clear()
    try:
        with pytest.raises(datasets.DatasetCorrupt) as e:
            datasets.load_splits("cifar10")
    finally:
        datasets.load_splits.cache_clear()
    message = str(e.value)
    assert "\n" not in message and str(folder) in message and "delete them and download it with " \
        "torchvision.datasets.CIFAR10(root=" in message
    assert ("corrupted" if checksums else "Error") in message
