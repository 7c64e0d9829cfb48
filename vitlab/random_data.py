"""Random-pixel CIFAR-10 and CIFAR-100 in their published on-disk layouts, for memory and speed
checks at paper scale where the real files are not at hand (scripts/paper_smoke.sh, tests).

The files parse exactly as the downloads do; only their md5 sums differ, so vitlab reads them with
VITLAB_NO_CHECKSUM=1 (see vitlab.run.datasets). Labels cycle through the classes, so every class is present.

    python -m vitlab.random_data DIR [--train 50000] [--test 10000]
"""
from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

CLASSES = {"cifar10": 10, "cifar100": 100}
_CIFAR10_BATCHES = 5


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the published files are Python 2 pickles


def _rows(n: int, classes: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """n images as CIFAR rows (1,024 red, then green, then blue values) and their labels."""
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), [i % classes for i in range(n)]


def write_cifar(root: str | Path, name: str, n_train: int = 50000, n_test: int = 10000, seed: int = 0) -> Path:
    """Write dataset `name` under root/name in torchvision's layout; returns that folder."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / name
    if name == "cifar10":
        batches = folder / "cifar-10-batches-py"
        for k, part in enumerate(np.array_split(np.arange(n_train), _CIFAR10_BATCHES), start=1):
            x, y = _rows(len(part), 10, rng)
            _pickle(batches / f"data_batch_{k}", {"batch_label": f"batch {k}", "labels": y, "data": x,
                                                  "filenames": [f"{i}.png" for i in part]})
        x, y = _rows(n_test, 10, rng)
        _pickle(batches / "test_batch", {"batch_label": "test", "labels": y, "data": x,
                                         "filenames": [f"{i}.png" for i in range(n_test)]})
        _pickle(batches / "batches.meta", {"label_names": [f"class{i}" for i in range(10)],
                                           "num_cases_per_batch": 10000, "num_vis": 3072})
    elif name == "cifar100":
        files = folder / "cifar-100-python"
        for part, n in (("train", n_train), ("test", n_test)):
            x, y = _rows(n, 100, rng)
            _pickle(files / part, {"data": x, "fine_labels": y, "coarse_labels": [c // 5 for c in y],
                                   "filenames": [f"{i}.png" for i in range(n)]})
        _pickle(files / "meta", {"fine_label_names": [f"class{i}" for i in range(100)],
                                 "coarse_label_names": [f"group{i}" for i in range(20)]})
    else:
        raise ValueError(f"name: {name!r} is not one of {', '.join(CLASSES)}")
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="write random-pixel CIFAR-10 and CIFAR-100 in their published layouts")
    parser.add_argument("root", help="the folder VITLAB_DATA will name")
    parser.add_argument("--train", type=int, default=50000, help="training images (published: 50,000)")
    parser.add_argument("--test", type=int, default=10000, help="test images (published: 10,000)")
    parser.add_argument("--only", choices=sorted(CLASSES), help="write just this one")
    args = parser.parse_args(argv)
    for name in [args.only] if args.only else CLASSES:
        print(write_cifar(args.root, name, args.train, args.test))


if __name__ == "__main__":
    main()
