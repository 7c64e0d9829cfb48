"""Evaluation as in the paper: few-shot linear evaluation and a linear probe on frozen
pre-logits features, on a transfer dataset the model was not trained on."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vitlab import data
from vitlab.config import RunConfig

SHOTS = (1, 5, 10, 25)
L2_REG = 1.0  # the regularisation of big_vision's few-shot evaluator, on centred features
FEWSHOT_SEED = 0


def fewshot_linear(train_features, train_labels, test_features, test_labels, l2_reg: float = L2_REG) -> float:
    """Accuracy of a closed-form regularised least-squares map from features to {-1, 1}
    one-vs-rest targets (the paper's few-shot linear evaluation).

    Features and targets are centred on the training set, which fits an unpenalised bias,
    exactly as scikit-learn's RidgeClassifier(alpha=l2_reg) does; written here because one
    small linear solve in float64 is all it takes and runs on the features' device.
    """
    x = torch.as_tensor(train_features, dtype=torch.float64)
    labels = torch.as_tensor(np.asarray(train_labels))
    classes, y_index = torch.unique(labels, return_inverse=True)
    y = -torch.ones(len(x), len(classes), dtype=torch.float64, device=x.device)
    y[torch.arange(len(x)), y_index] = 1
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    n, d = xc.shape
    if n < d:  # the dual form solves an n x n system instead of d x d
        w = xc.T @ torch.linalg.solve(xc @ xc.T + l2_reg * torch.eye(n, dtype=x.dtype, device=x.device), yc)
    else:
        w = torch.linalg.solve(xc.T @ xc + l2_reg * torch.eye(d, dtype=x.dtype, device=x.device), xc.T @ yc)
    test = torch.as_tensor(test_features, dtype=torch.float64)
    predicted = classes[((test - x_mean) @ w + y_mean).argmax(1).cpu()]
    return (predicted == torch.as_tensor(np.asarray(test_labels))).double().mean().item()


@torch.no_grad()
def features(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Pre-logits features of normalised images: the pooled representation, through the
    paper's pre-logits layer when the model has one."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = model.forward_head(model.forward_features(images[i:i + batch_size]), pre_logits=True)
        head = getattr(model, "head", None)
        if isinstance(head, nn.Sequential) and hasattr(head, "pre_logits"):
            x = head.act(head.pre_logits(x))
        out.append(x)
    model.train(was_training)
    return torch.cat(out)


def transfer_images(cfg: RunConfig, device: torch.device | str = "cpu"):
    """A run's transfer dataset at its input size, normalised with the run's own statistics:
    (train images, train labels, test images, test labels), or None if it has none here."""
    spec = data.spec(cfg.dataset)
    if spec.transfer is None:
        return None
    try:  # evaluation is a bonus: a transfer dataset not on this machine skips it
        data.spec(spec.transfer).check_available()
    except data.DatasetMissing:
        return None
    if data.spec(spec.transfer).channels != spec.channels:
        return None
    target, own = data.load(spec.transfer), data.load(cfg.dataset)
    out = []
    for images, labels in ((target.train_images, target.train_labels), (target.test_images, target.test_labels)):
        images = images.to(device)
        if images.shape[-1] != cfg.input_size:
            images = data.resize(images, cfg.input_size)
        out += [data.normalise(images, own), labels.to(device)]
    return tuple(out)


def transfer_metrics(cfg: RunConfig, model: nn.Module, device: torch.device | str = "cpu") -> dict[str, float | None]:
    """Few-shot accuracies (SHOTS examples per class, drawn by a fixed seed) and a linear probe
    on the whole training pool, both on the run's transfer dataset."""
    names = [f"fewshot_{k}" for k in SHOTS] + ["linear_probe"]
    images = transfer_images(cfg, device)
    if images is None:
        return dict.fromkeys(names)
    x_train, y_train, x_test, y_test = images
    f_train, f_test = features(model, x_train), features(model, x_test)
    labels = y_train.cpu().numpy()
    rng = np.random.default_rng(FEWSHOT_SEED)
    out = {}
    for k in SHOTS:
        pick = np.concatenate([rng.choice(np.flatnonzero(labels == c), k, replace=False) for c in np.unique(labels)])
        out[f"fewshot_{k}"] = fewshot_linear(f_train[pick], labels[pick], f_test, y_test.cpu())
    out["linear_probe"] = fewshot_linear(f_train, labels, f_test, y_test.cpu())
    return out
