import math

import torch
import torch.nn.functional as F

from vitlab import data
from vitlab.config import RunConfig
from vitlab.models import build_model
from vitlab.train import fit, random_crop, schedule


def test_fit_trains_evaluates_and_accounts_compute(tiny_cfg):
    result = fit(tiny_cfg, build_model(tiny_cfg), progress=False)
    assert result.status == "ok" and 0 <= result.test_accuracy <= 1
    assert result.train_steps == 4 and result.images_seen == 4 * 32
    assert result.train_flops == 3 * result.flops_per_image * result.images_seen
    assert result.images_per_s > 0 and result.wall_time_s >= result.train_time_s
    assert len(result.history) == 1 and math.isfinite(result.train_loss)


def test_same_config_same_metrics(tiny_cfg):
    a = fit(tiny_cfg, build_model(tiny_cfg), progress=False)
    torch.rand(7)  # whatever ran before must not matter
    b = fit(tiny_cfg, build_model(tiny_cfg), progress=False)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert a.test_accuracy == b.test_accuracy


def test_model_init_follows_the_seed(tiny_cfg):
    torch.rand(3)
    a, b = build_model(tiny_cfg), build_model(tiny_cfg)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    other = build_model(RunConfig.from_dict({**tiny_cfg.to_dict(), "seed": 1}))
    assert not torch.equal(a.head.weight, other.head.weight)


def test_enough_training_learns_digits():
    cfg = RunConfig.from_dict(dict(depth=1, width=32, heads=2, mlp_dim=64, patch_size=14, train_size=1000, steps=300))
    assert fit(cfg, build_model(cfg), progress=False).test_accuracy > 0.75


def test_nan_loss_is_recorded_as_diverged(tiny_cfg):
    cfg = RunConfig.from_dict({**tiny_cfg.to_dict(), "lr": 1e6, "steps": 20})
    result = fit(cfg, build_model(cfg), progress=False)
    assert result.status == "diverged" and result.test_accuracy is None and "non-finite" in result.error


def test_random_crop_takes_a_window_of_the_padded_image():
    x = data.load("mnist5k").train_images[:16]
    crops = random_crop(x, 2, torch.Generator().manual_seed(0))
    padded = F.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(16):
        hits = [(a, b) for a in range(5) for b in range(5) if torch.equal(padded[i, :, a:a + 28, b:b + 28], crops[i])]
        assert hits
        offsets.add(hits[0])
    assert len(offsets) > 1


def test_schedule_warms_up_then_decays_to_zero():
    f = schedule(100, 10)
    assert f(0) == 0.1 and f(9) == 1.0
    assert f(10) == 1.0 and 0.4 < f(55) < 0.6 and f(100) < 1e-6
