"""What a run draws from its dataset: a nested training subset, batches resized and
normalised on the training device, random crops, and the held-out splits in batches.

Two sources give the same batches: InMemory holds the run's images on the device, Streamed
reads a dataset too large to hold decoded through DataLoader workers.
"""
from __future__ import annotations

import functools
import os

import numpy as np
import torch
import torch.nn.functional as F

from vitlab.run import datasets, seeds
from vitlab.run.config import RunConfig

# Images per forward pass when evaluating: 500, and above 64 px as many as hold 500 images' worth
# of 64 px pixels (40 at 224 px), so that one batch's activations stay small at any resolution.
EVAL_BATCH, EVAL_PIXELS = 500, 500 * 64 * 64


def eval_batch(image_size: int) -> int:
    return max(1, min(EVAL_BATCH, EVAL_PIXELS // image_size ** 2))


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
    return out.round_().clamp_(0, 255).to(torch.uint8)  # in place: one float copy of the batch at a time


@functools.lru_cache(maxsize=None)
def stream_stats(name: str, n: int = 1000) -> tuple[float, float]:
    """Pixel mean and std of a streamed dataset's training pool, from n of its images evenly spaced
    less its validation split (load_splits() takes a held dataset's from all of them): one estimate
    per dataset, whatever the subset."""
    s = datasets.spec(name)
    train, _ = s.streams()
    pool, _ = datasets.holdout(train.labels, s.val_count(len(train)))
    pick = pool[np.linspace(0, len(pool) - 1, min(n, len(pool))).astype(int)]
    return datasets.pixel_stats(np.stack([train[int(i)][0].numpy() for i in pick]))


def normalise(x: torch.Tensor, split) -> torch.Tensor:
    """(x / 255 - split.mean) / split.std as float32 (split: anything with a mean and std), in
    one new tensor (bitwise the out-of-place arithmetic)."""
    return x.to(torch.float32, copy=True).div_(255).sub_(split.mean).div_(split.std)


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator, part: slice = slice(None),
                total: int | None = None) -> torch.Tensor:
    """Per-image random crop after zero padding, done on x's device by gathering.

    Offsets are drawn for `total` images (the global batch) and x takes its `part` of them,
    so a batch split over processes is cropped exactly as on one process.
    """
    b, c, h, w = x.shape
    total = total or b
    dy = torch.randint(0, 2 * pad + 1, (total, 1, 1, 1), device=x.device, generator=generator)[part]
    dx = torch.randint(0, 2 * pad + 1, (total, 1, 1, 1), device=x.device, generator=generator)[part]
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = dy + torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = dx + torch.arange(w, device=x.device).view(1, 1, 1, w)
    batch = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch, chan, rows, cols]


class InMemory:
    """A run's data held whole on the device as uint8 at its stored size; batches gathered there
    and resized to the run's input size as they are drawn, so memory is bounded by the batch.

    Resizing per batch rather than once: it costs about 1 ms per image to 224 px on a CPU core,
    next to 20+ ms of a ViT-Ti/16 training step per image, and a held copy at 224 px would be
    7.5 GB for CIFAR's pool. Bilinear resizing is per image, so the batches are bitwise those of
    a resized copy (tested).
    """

    def __init__(self, cfg: RunConfig, spec: datasets.DatasetSpec, device: torch.device):
        split = datasets.load_splits(cfg.dataset)
        self.mean, self.std, self.seed, self.device = split.mean, split.std, cfg.seed, device
        idx = torch.from_numpy(subset_indices(split.train_labels, cfg.train_size, cfg.seed))
        self.x_train, self.y_train = split.train_images[idx].to(device), split.train_labels[idx].to(device)
        self.held = {"val": (split.val_images.to(device), split.val_labels.to(device)),
                     "test": (split.test_images.to(device), split.test_labels.to(device))}
        self.size = cfg.input_size if cfg.input_size != spec.image_size else None
        self.shuffle = torch.Generator(device=device)

    def sized(self, images: torch.Tensor) -> torch.Tensor:
        return resize(images, self.size) if self.size else images

    def batches(self, epoch: int, parts: list[slice]):
        """This process's part of each remaining step's batch, from the epoch's seeded shuffle."""
        self.shuffle.manual_seed(seeds.derive(self.seed, "shuffle", epoch))
        perm = torch.randperm(len(self.y_train), device=self.device, generator=self.shuffle)
        for part in parts:
            b = perm[part]
            yield self.sized(self.x_train[b]), self.y_train[b]

    def held_batches(self, split: str):
        """The fixed "val" or "test" split in evaluation batches, resized as the training batches."""
        x, y = self.held[split]
        batch_size = eval_batch(self.size or x.shape[-1])
        return ((self.sized(x[i:i + batch_size]), y[i:i + batch_size]) for i in range(0, len(y), batch_size))


class Streamed:
    """A run's data read from disk by DataLoader workers, for datasets too large to hold decoded.

    The same seeded shuffle and batches as InMemory, so a dataset gives the same run either way.
    """

    def __init__(self, cfg: RunConfig, spec: datasets.DatasetSpec, device: torch.device, workers: int | None = None):
        self.train, self.test = spec.streams()
        pool, self.val = datasets.holdout(self.train.labels, spec.val_count(len(self.train)))
        self.idx = pool[subset_indices(self.train.labels[pool], cfg.train_size, cfg.seed)]
        self.seed, self.device, self.size = cfg.seed, device, cfg.input_size
        self.resize = cfg.input_size != spec.image_size
        self.workers = min(8, os.cpu_count() or 1) if workers is None else workers
        self.mean, self.std = stream_stats(cfg.dataset)  # the pool's, as InMemory's

    def _loader(self, dataset, batch_sampler):
        return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, num_workers=self.workers,
                                           pin_memory=self.device.type == "cuda")

    def _on_device(self, loader):
        for x, y in loader:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            yield (resize(x, self.size) if self.resize else x), y

    def batches(self, epoch: int, parts: list[slice]):
        # The shuffle InMemory draws on the device, drawn here on the CPU (identical on a CPU run).
        shuffle = torch.Generator().manual_seed(seeds.derive(self.seed, "shuffle", epoch))
        order = self.idx[torch.randperm(len(self.idx), generator=shuffle).numpy()]
        yield from self._on_device(self._loader(self.train, [order[part].tolist() for part in parts]))

    def held_batches(self, split: str):
        batch_size = eval_batch(self.size)
        dataset, idx = (self.test, np.arange(len(self.test))) if split == "test" else (self.train, self.val)
        sampler = [idx[i:i + batch_size].tolist() for i in range(0, len(idx), batch_size)]
        return self._on_device(self._loader(dataset, sampler))


def source(cfg: RunConfig, device: torch.device) -> InMemory | Streamed:
    """The run's data: held on the device, or streamed where the dataset is too large to hold."""
    spec = datasets.spec(cfg.dataset)
    return (Streamed if spec.streams else InMemory)(cfg, spec, device)
