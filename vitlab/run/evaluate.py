"""Evaluation as in the paper: top-1 accuracy on a held-out split, and few-shot linear evaluation
and a linear probe on frozen pre-logits features, on a transfer dataset the model was not trained on."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from vitlab.run import data, datasets, seeds
from vitlab.run.config import RunConfig

SHOTS = (1, 5, 10, 25)
# big_vision's few-shot evaluator (evaluators/fewshot_lsr.py): a fixed L2 of 2^10 on features
# standardised with the shot set's statistics, plus a constant bias feature large enough to be
# barely regularised; three seeded draws of nested shot sets, averaged.
L2_REG = 2.0 ** 10
BIAS_FEATURE = 100.0
FEWSHOT_DRAWS = 3


@torch.no_grad()
def correct(model: nn.Module, batches, stats) -> np.ndarray:
    """Whether model's top-1 prediction is right, image by image in the batches' order, over
    (uint8 images, labels) batches on its device, normalised with stats' mean and std. Every run
    scored on a split sees its images in one order, so two runs' answers pair image by image."""
    was_training = model.training
    model.eval()
    right = [model(data.normalise(images, stats)).argmax(1) == labels for images, labels in batches]
    model.train(was_training)
    return torch.cat(right).cpu().numpy()


def accuracy(model: nn.Module, batches, stats) -> float:
    """Top-1 accuracy (a fraction): the mean of `correct`."""
    return float(correct(model, batches, stats).mean())


def fewshot_linear(train_features, train_labels, test_features, test_labels, l2_reg: float = L2_REG) -> float:
    """Accuracy of big_vision's few-shot linear classifier: closed-form ridge regression from
    standardised features (with a constant bias feature) onto {-1, 1} one-vs-rest targets.

    Written here because one small float64 solve is all it takes and it runs on the features'
    device; it matches scikit-learn's RidgeClassifier on the same standardised, augmented
    features without an intercept (tested).
    """
    x = torch.as_tensor(train_features, dtype=torch.float64)
    labels = torch.as_tensor(np.asarray(train_labels))
    classes, y_index = torch.unique(labels, return_inverse=True)
    y = -torch.ones(len(x), len(classes), dtype=torch.float64, device=x.device)
    y[torch.arange(len(x)), y_index] = 1
    mean, std = x.mean(0), x.std(0, correction=0) + 1e-5

    def prepare(f):
        f = (torch.as_tensor(f, dtype=torch.float64, device=x.device) - mean) / std
        return torch.cat([f, torch.full((len(f), 1), BIAS_FEATURE, dtype=f.dtype, device=f.device)], 1)

    x = prepare(x)
    n, d = x.shape
    if n < d:  # the dual form solves an n x n system instead of d x d
        w = x.T @ torch.linalg.solve(x @ x.T + l2_reg * torch.eye(n, dtype=x.dtype, device=x.device), y)
    else:
        w = torch.linalg.solve(x.T @ x + l2_reg * torch.eye(d, dtype=x.dtype, device=x.device), x.T @ y)
    predicted = classes[(prepare(test_features) @ w).argmax(1).cpu()]
    return (predicted == torch.as_tensor(np.asarray(test_labels))).double().mean().item()


def shot_sets(labels: np.ndarray, shots, seed: int) -> dict[int, np.ndarray]:
    """Nested shot sets, as big_vision draws them: each class's examples in one seeded
    permutation, the first k of each for k shots. Shot counts above the smallest class's
    count are left out (a class cannot give more examples than it has)."""
    rng = np.random.default_rng(seed)
    order = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    smallest = min(len(o) for o in order)
    return {k: np.concatenate([o[:k] for o in order]) for k in shots if k <= smallest}


@torch.no_grad()
def features(model: nn.Module, images: torch.Tensor, batch_size: int = data.EVAL_BATCH,
             prepare: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Pre-logits features: the pooled representation, through the paper's pre-logits layer when
    the model has one. `prepare` turns each batch of images into the model's input (resizing
    and normalising uint8 images a batch at a time); without it, images are that input."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size]
        x = model.forward_head(model.forward_features(prepare(x) if prepare else x), pre_logits=True)
        head = getattr(model, "head", None)
        if isinstance(head, nn.Sequential) and hasattr(head, "pre_logits"):
            x = head.act(head.pre_logits(x))
        out.append(x)
    model.train(was_training)
    return torch.cat(out)


def transfer_images(cfg: RunConfig, device: torch.device | str = "cpu"):
    """A run's transfer dataset as uint8 at its stored size, on device, and the run's way of
    preparing a batch of it (resized to the run's input size, normalised with the run's own
    statistics): (train images, train labels, test images, test labels, prepare), or None if it
    has none here."""
    spec = datasets.spec(cfg.dataset)
    if spec.transfer is None:
        return None
    try:  # evaluation is a bonus: a transfer dataset not on this machine skips it
        datasets.spec(spec.transfer).check_available()
    except datasets.DatasetMissing:
        return None
    if datasets.spec(spec.transfer).channels != spec.channels:
        return None
    target, own = datasets.load_splits(spec.transfer), datasets.load_splits(cfg.dataset)

    def prepare(images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != cfg.input_size:
            images = data.resize(images, cfg.input_size)
        return data.normalise(images, own)

    return (target.train_images.to(device), target.train_labels.to(device),
            target.test_images.to(device), target.test_labels.to(device), prepare)


def transfer_metrics(cfg: RunConfig, model: nn.Module, device: torch.device | str = "cpu") -> dict:
    """Few-shot accuracies (SHOTS examples per class, the mean of FEWSHOT_DRAWS draws from the
    run's own few-shot seed stream) and a linear probe on the whole training pool, both on the
    run's transfer dataset. A shot count the transfer dataset's smallest class cannot fill is
    left empty and said in `notes`."""
    names = [f"fewshot_{k}" for k in SHOTS] + ["linear_probe"]
    out: dict = dict.fromkeys(names) | {"notes": None}
    images = transfer_images(cfg, device)
    if images is None:
        return out
    x_train, y_train, x_test, y_test, prepare = images
    batch = data.eval_batch(cfg.input_size)
    f_train, f_test = (features(model, x, batch, prepare) for x in (x_train, x_test))
    labels, y_test = y_train.cpu().numpy(), y_test.cpu()
    scores: dict[int, list[float]] = {}
    for draw in range(FEWSHOT_DRAWS):
        for k, pick in shot_sets(labels, SHOTS, seeds.derive(cfg.seed, "fewshot", draw)).items():
            scores.setdefault(k, []).append(fewshot_linear(f_train[pick], labels[pick], f_test, y_test))
    out.update({f"fewshot_{k}": float(np.mean(v)) for k, v in scores.items()})
    skipped = [k for k in SHOTS if k not in scores]
    if skipped:
        smallest = int(np.unique(labels, return_counts=True)[1].min())
        out["notes"] = (f"{', '.join(map(str, skipped))}-shot evaluation skipped: the smallest class of "
                        f"{datasets.spec(cfg.dataset).transfer} has {smallest} training images")
    out["linear_probe"] = fewshot_linear(f_train, labels, f_test, y_test)
    return out
