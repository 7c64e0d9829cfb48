"""The peak-memory estimate: its parts, its quick bound, and the refusal of a run that cannot fit.
Its accuracy against measured peaks is in test_paper_scale.py."""
import dataclasses
import re

import pytest
import torch

from vitlab import PROJECT_ROOT
from vitlab.run import memory
from vitlab.run.config import ConfigError, RunConfig
from vitlab.run.models import build_model
from vitlab.study.plans import SweepError, load_plan
from vitlab.study.sweep import run_sweep

CASES = [
    {},
    {"model": "resnet", "depth": 8, "width": 8},
    {"model": "hybrid", "depth": 2, "width": 32, "heads": 2, "mlp_dim": 64, "patch_size": 1},
    {"depth": 2, "batch_size": 8, "optimizer": "sgd"},
    {"depth": 2, "image_size": 56, "precision": "bf16"},
]


@pytest.mark.parametrize("values", CASES)
def test_quick_bound_is_above_the_tracked_peak(values):
    cfg = RunConfig.from_dict(values)
    shape = memory._shape_only(cfg, cfg.batch_size)
    training, scaling, evaluation = memory._tracked_peak(shape, torch.device("cpu"))
    weights = sum(p.numel() * 4 for p in build_model(cfg).parameters())
    assert weights < training and max(training, evaluation) <= memory._upper_bound(shape)
    assert 0 < scaling < training


def test_estimate_grows_with_the_micro_batch_and_shrinks_with_bf16():
    cfg = RunConfig.from_dict({"depth": 2, "image_size": 56, "batch_size": 256})
    e = memory.estimate(cfg)
    assert e.micro_batch == 256 and e.fits() and e.peak == e.base + e.data + e.training > e.evaluation
    half = memory.estimate(dataclasses.replace(cfg, grad_accum=2))
    assert half.micro_batch == 128 and half.training < e.training
    assert 0.45 < half.per_micro_batch / e.per_micro_batch < 0.55
    # At 8 images a step the evaluation batch (500 images, no gradients) is the larger peak.
    small = memory.estimate(dataclasses.replace(cfg, batch_size=8))
    assert small.evaluation > small.training and small.peak == small.base + small.data + small.evaluation
    assert memory.estimate(dataclasses.replace(cfg, precision="bf16")).per_micro_batch < e.per_micro_batch
    # Held images: the 3,500-image subset, the 500 validation and 1,000 test images, and (on a CPU) the
    # loaded dataset, uint8 at 28 px; the transfer dataset (digits, 8 px) beside them.
    assert e.data == (3500 + 500 + 1000 + 4000 + 1000) * 28 * 28 + (1397 + 400) * 8 * 8


def limit_between(cfg, micro_batches: int) -> float:
    """A device size (GiB) that fits cfg at `micro_batches` micro-batches a step but not at one."""
    e = memory.estimate(cfg)
    assert e.training - e.per_micro_batch * (1 - 1.2 / micro_batches) > e.evaluation
    return (e.peak - e.per_micro_batch * (1 - 1.2 / micro_batches)) / memory.GiB


def test_a_run_too_large_for_its_device_is_refused_with_advice(monkeypatch):
    cfg = RunConfig.from_dict({"depth": 2, "image_size": 56, "batch_size": 1024, "train_size": 2000})
    monkeypatch.setenv("VITLAB_DEVICE_MEMORY_GIB", str(limit_between(cfg, 4)))
    with pytest.raises(ConfigError, match=r"^batch_size: run \w{12} needs about .* GiB at its peak \(1024 images a "
                       r"micro-batch\), more than the .* GiB of this machine's memory; set grad_accum: (4|8) "):
        memory.check(cfg)
    message = str(pytest.raises(ConfigError, memory.check, cfg).value)
    k = int(message.split("grad_accum: ")[1].split()[0])
    assert memory.check(dataclasses.replace(cfg, grad_accum=k)) is not None  # fits, estimated in full
    assert "\n" not in message
    monkeypatch.setenv("VITLAB_DEVICE_MEMORY_GIB", "0.1")  # less than the process itself
    with pytest.raises(ConfigError, match="a smaller model or input size"):
        memory.check(cfg)


def test_sweep_refuses_before_any_run_trains(tmp_path, monkeypatch):
    p = tmp_path / "big.yaml"
    p.write_text("base: {depth: 2, image_size: 56, batch_size: 1024, train_size: 2000, steps: 1}\nruns: [{depth: 1, batch_size: 64}, {}]\n")
    cfg = load_plan(p).runs[1]
    monkeypatch.setenv("VITLAB_DEVICE_MEMORY_GIB", str(limit_between(cfg, 4)))
    with pytest.raises(SweepError, match=rf"^{p}: batch_size: run {cfg.run_id} needs about .*grad_accum"):
        run_sweep(load_plan(p), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()  # nothing trained, nothing written


def test_small_runs_pass_on_the_quick_bound():
    for path in ("params/quickstart.yaml", "params/data_size.yaml"):
        assert all(memory.check(cfg) is None for cfg in load_plan(PROJECT_ROOT / path).runs)


@pytest.mark.parametrize("pos_embed", ["none", "learn2d", "sincos2d"])
def test_every_position_embedding_is_estimated(pos_embed):
    # sincos2d's fixed table is a parameter without gradients, which MemTracker cannot hook.
    e = memory.estimate(RunConfig.from_dict({"depth": 2, "pos_embed": pos_embed}))
    assert 0 < e.per_micro_batch < e.training


def test_dry_run_prints_peak_memory_and_refuses_what_cannot_fit(tmp_path, monkeypatch, capsys):
    from vitlab.cli import main

    p = tmp_path / "one.yaml"
    p.write_text("base: {depth: 1, width: 16, heads: 2, mlp_dim: 32, train_size: 200, steps: 2}\nruns: [{}]\n")
    assert main(["sweep", str(p), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "peak memory" in out.splitlines()[1] and "refused" not in out
    assert re.search(r"^peak memory: up to [\d.]+ GiB of the [\d.]+ GiB of this machine's memory \(run \w{12}: "
                     r"weights, gradients and optimizer state \d+ MiB, activations \d+ MiB at 64 images", out, re.M)
    monkeypatch.setenv("VITLAB_DEVICE_MEMORY_GIB", "0.1")
    assert main(["sweep", str(p), "--dry-run"]) == 1
    assert re.search(r"^refused: batch_size: run \w{12} needs about .* more than the 0\.1 GiB", capsys.readouterr().out, re.M)
