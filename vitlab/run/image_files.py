"""Image files to uint8 tensors: photos decoded to squares (and cached), or read one at a time
by DataLoader workers when a tree is too large to hold decoded."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vitlab.run import files

if TYPE_CHECKING:
    import torch

# Photos of varying size are stored square at this size; a run's image_size resizes them again.
PHOTO_SIZE = 224
# Image trees that would decode to more than this many bytes stream from disk through
# DataLoader workers instead of living in memory (VITLAB_IN_MEMORY_GB overrides it).
IN_MEMORY_BYTES = 4e9


def in_memory_bytes() -> float:
    return float(os.environ["VITLAB_IN_MEMORY_GB"]) * 1e9 if "VITLAB_IN_MEMORY_GB" in os.environ else IN_MEMORY_BYTES


def too_large(n_images: int, channels: int, size: int) -> bool:
    """Whether n decoded images would be too many bytes to hold: such a dataset streams."""
    return n_images * channels * size * size > in_memory_bytes()


class Images:
    """One split of an image dataset, decoded one image at a time (in DataLoader workers):
    (uint8 (C, size, size), label). open_image(i) returns the i-th PIL image. A map-style dataset
    by its methods (DataLoader asks no more), not by torch's Dataset class: this module loads
    without torch, for configs that validate without it."""

    def __init__(self, open_image, labels: np.ndarray, channels: int, size: int):
        self.open_image, self.labels, self.channels, self.size = open_image, labels, channels, size

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        import torch

        return torch.from_numpy(to_array(self.open_image(i), self.channels, self.size)), int(self.labels[i])


class OpenFile:
    """Picklable image opener for DataLoader workers: the i-th of a list of files."""

    def __init__(self, paths):
        self.paths = paths

    def __call__(self, i):
        from PIL import Image

        return Image.open(self.paths[i])


class OpenRow:
    """Picklable image opener for DataLoader workers: the i-th row of a Hugging Face split."""

    def __init__(self, split):
        self.split = split

    def __call__(self, i):
        return self.split[i]["image"]


def photos(paths, labels, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode image files to PHOTO_SIZE RGB squares."""
    from PIL import Image

    return decode((Image.open(p) for p in paths), len(paths), 3, PHOTO_SIZE, desc), np.asarray(labels, dtype=np.int64)


def decode(images, n: int, channels: int, size: int, desc: str) -> np.ndarray:
    """PIL images to uint8 (n, channels, size, size)."""
    from tqdm.auto import tqdm

    out = np.empty((n, channels, size, size), dtype=np.uint8)
    for i, im in enumerate(tqdm(images, total=n, desc=desc, unit="img", leave=False)):
        out[i] = to_array(im, channels, size)
    return out


def to_array(im, channels: int, size: int) -> np.ndarray:
    """One PIL image to uint8 (channels, size, size): short side resized to size, centre crop."""
    import torch
    from torchvision.transforms.functional import center_crop, resize

    im = im.convert("L" if channels == 1 else "RGB")
    t = torch.from_numpy(np.array(im)).reshape(im.size[1], im.size[0], channels).permute(2, 0, 1)
    if t.shape[-2:] != (size, size):
        t = center_crop(resize(t, size, antialias=True), size)
    return t.numpy()


def cached(folder: Path, decode_arrays) -> tuple[np.ndarray, ...]:
    """decode_arrays()'s arrays, kept in folder after the first call: decoding thousands of
    JPEGs takes minutes."""
    import torch

    cache = folder / f"vitlab-{PHOTO_SIZE}px.pt"
    if cache.is_file():
        return tuple(a.numpy() for a in torch.load(cache, weights_only=True))
    arrays = decode_arrays()
    files.write_whole(cache, lambda tmp: torch.save(tuple(torch.from_numpy(a) for a in arrays), tmp))
    return arrays
