import math

import pytest
import torch

from vitlab.run import train
from vitlab.run.config import RunConfig
from vitlab.run.models import build_model
from vitlab.run.step import schedule
from vitlab.run.train import fit


def test_fit_trains_evaluates_and_accounts_compute(tiny_cfg):
    result = fit(tiny_cfg, build_model(tiny_cfg), progress=False)
    assert result.status == "ok" and 0 <= result.test_accuracy <= 1 and 0 <= result.val_accuracy <= 1
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


def test_schedule_warms_up_then_decays_to_zero():
    f = schedule(100, 10)
    assert f(0) == 0.1 and f(9) == 1.0
    assert f(10) == 1.0 and 0.4 < f(55) < 0.6 and f(100) < 1e-6


def test_linear_decay_and_sgd_and_bf16_train(tiny_cfg):
    f = schedule(100, 10, "linear")
    assert f(10) == 1.0 and f(55) == 0.5 and f(100) == 0.0
    for overrides in ({"optimizer": "sgd", "lr": 0.05, "decay": "linear"}, {"precision": "bf16"}):
        cfg = RunConfig.from_dict({**tiny_cfg.to_dict(), **overrides})
        model = build_model(cfg)
        result = fit(cfg, model, progress=False)
        assert result.status == "ok" and math.isfinite(result.train_loss)
    assert model.head.weight.dtype == torch.float32  # autocast, weights stay fp32


def test_sgd_has_momentum_and_adamw_the_papers_betas(tiny_cfg):
    from vitlab.run.step import make_optimizer

    sgd, _ = make_optimizer(build_model(tiny_cfg), RunConfig.from_dict({**tiny_cfg.to_dict(), "optimizer": "sgd"}), 10)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9
    adamw, _ = make_optimizer(build_model(tiny_cfg), tiny_cfg, 10)
    assert adamw.param_groups[0]["betas"] == (0.9, 0.999)
    decays = {g["weight_decay"] for g in adamw.param_groups}
    assert decays == {0.0, tiny_cfg.weight_decay}  # biases and norms are not decayed


@pytest.mark.parametrize("pos_embed", ["learn", "learn2d", "sincos2d", "none"])
def test_no_position_embedding_variant_gets_weight_decay(pos_embed):
    """Found by reading: learn2d's row and column tables were decayed while timm exempts the 1-D
    pos_embed, so Table 8 compared regularisers as much as embeddings."""
    from vitlab.run.models import position_parameters
    from vitlab.run.step import make_optimizer

    cfg = RunConfig.from_dict({"pos_embed": pos_embed, "weight_decay": 0.1})
    model = build_model(cfg)
    optimizer, _ = make_optimizer(model, cfg, 10)
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    trainable = {n for n in position_parameters(model) if names[n].requires_grad}
    assert trainable == {"learn": {"pos_embed"}, "learn2d": {"patch_embed.rows", "patch_embed.cols"},
                         "sincos2d": set(), "none": set()}[pos_embed]
    assert all(decay[id(names[n])] == 0.0 for n in trainable)
    assert decay[id(names["blocks.0.attn.qkv.weight"])] == 0.1  # the rest is still decayed


def test_shuffle_and_crops_never_draw_from_the_same_seed(tiny_cfg, monkeypatch):
    """Found by reading: the shuffle of epoch e and the crops of step e drew the same seed."""
    used = []

    class Recording(torch.Generator):
        def manual_seed(self, seed):
            used.append(seed)
            return super().manual_seed(seed)

    monkeypatch.setattr(torch, "Generator", Recording)
    cfg = RunConfig.from_dict({**tiny_cfg.to_dict(), "steps": 12, "augment": True})  # two epochs of 6 steps
    fit(cfg, build_model(cfg), progress=False)
    assert len(used) == 2 + 12 and len(set(used)) == len(used)


def test_random_streams_are_independent():
    from vitlab.run import seeds

    drawn = {seeds.derive(0, stream, i) for stream in ("shuffle", "crops") for i in range(50)}
    drawn |= {seeds.derive(0, "init"), seeds.derive(1, "init")} | {seeds.derive(0, "fewshot", d) for d in range(3)}
    assert len(drawn) == 100 + 2 + 3
    assert seeds.derive(0, "shuffle", 3) == seeds.derive(0, "shuffle", 3)
    with pytest.raises(ValueError, match="stream"):
        seeds.derive(0, "dropout")


def test_gradient_accumulation_gives_the_same_step():
    base = dict(depth=1, width=16, heads=2, mlp_dim=32, patch_size=7, train_size=256, steps=3, batch_size=64,
                pool="avg")  # no batch-dependent layers: micro-batches must not change the maths
    one = fit(RunConfig.from_dict(base), build_model(RunConfig.from_dict(base)), progress=False)
    cfg4 = RunConfig.from_dict({**base, "grad_accum": 4})
    four = fit(cfg4, build_model(cfg4), progress=False)
    assert four.train_loss == pytest.approx(one.train_loss, rel=1e-5)
    assert four.test_accuracy == pytest.approx(one.test_accuracy, abs=0.002)


def test_interrupted_run_resumes_from_its_checkpoint_to_the_same_result(tiny_cfg, tmp_path, monkeypatch):
    # Both runs at torch's count: a run takes the cores others leave it, and results differ in
    # their last bits with the thread count.
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    cfg = RunConfig.from_dict({**tiny_cfg.to_dict(), "steps": 12, "train_size": 128, "augment": True})
    whole = fit(cfg, build_model(cfg), progress=False)

    calls = {"n": 0}
    real_step = train.step

    def dies_at_step_8(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt  # killed after the checkpoint at step 5
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "step", dies_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, build_model(cfg), progress=False, checkpoint_dir=tmp_path, checkpoint_every=5)
    monkeypatch.setattr(train, "step", real_step)
    state = torch.load(tmp_path / train.CHECKPOINT_FILE, weights_only=True)  # no code runs on load
    assert state["steps"] == 5

    resumed = fit(cfg, build_model(cfg), progress=False, checkpoint_dir=tmp_path, checkpoint_every=5)
    assert resumed.train_steps == 12 and resumed.images_seen == whole.images_seen
    assert resumed.history == [{**h, "images_per_s": r["images_per_s"]} for h, r in zip(whole.history, resumed.history)]
    assert (resumed.train_loss, resumed.test_accuracy) == (whole.train_loss, whole.test_accuracy)  # bitwise
    assert torch.load(tmp_path / train.CHECKPOINT_FILE, weights_only=True)["steps"] == 12


def test_a_resumed_run_keeps_the_thread_count_of_its_checkpoint(tiny_cfg, tmp_path):
    """Results differ in their last bits with the thread count, so a run resumed on a busier or
    quieter machine goes on with the threads it started with."""
    before = torch.get_num_threads()
    try:
        whole = fit(tiny_cfg, build_model(tiny_cfg), progress=False, checkpoint_dir=tmp_path)
        state = torch.load(tmp_path / train.CHECKPOINT_FILE, weights_only=True)
        assert state["threads"] == [[0, whole.threads]] and whole.history[-1]["threads"] == whole.threads >= 1
        other = 1 if whole.threads > 1 else 2
        state["threads"] = [[0, whole.threads], [2, other]]  # lowered at step 2, beside a neighbour
        torch.save(state, tmp_path / train.CHECKPOINT_FILE)
        resumed = fit(tiny_cfg, build_model(tiny_cfg), progress=False, checkpoint_dir=tmp_path)
        assert resumed.threads == whole.threads and torch.get_num_threads() == other
    finally:
        torch.set_num_threads(before)


def test_tensorboard_tracker_logs_each_epoch(tiny_cfg, tmp_path):
    pytest.importorskip("tensorboard")
    fit(tiny_cfg, build_model(tiny_cfg), progress=False, log_with="tensorboard", log_dir=tmp_path)
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(events[0].parent)).Reload().Tags()["scalars"]
    assert {"train_loss", "train_accuracy", "images_per_s"} <= set(tags)


@pytest.mark.slow
def test_compiled_run_trains_as_the_eager_one_and_saves_the_same_weights(tiny_cfg, tmp_path):
    import dataclasses

    eager = fit(tiny_cfg, build_model(tiny_cfg), progress=False)
    model = build_model(tiny_cfg)
    compiled = fit(dataclasses.replace(tiny_cfg, compile=True), model, progress=False, checkpoint_dir=tmp_path)
    assert compiled.train_loss == pytest.approx(eager.train_loss, abs=1e-4)
    assert compiled.test_accuracy == pytest.approx(eager.test_accuracy, abs=0.02)
    saved = torch.load(tmp_path / "state.pt", weights_only=True)["model"]
    assert saved.keys() == build_model(tiny_cfg).state_dict().keys()  # no torch.compile wrapper in checkpoints


@pytest.mark.parametrize("signal_name", ["SIGUSR1", "SIGTERM"])
def test_a_schedulers_signal_saves_the_checkpoint_stops_and_the_rerun_ends_as_the_uninterrupted_run(
        tiny_cfg, tmp_path, monkeypatch, signal_name):
    """SLURM warns with SIGUSR1 (sbatch --signal) and ends with SIGTERM: either stops the run at the
    next step with its checkpoint saved, and the handlers before it are put back."""
    import os
    import signal

    from vitlab.run import signals

    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    cfg = RunConfig.from_dict({**tiny_cfg.to_dict(), "steps": 12, "train_size": 128})
    whole = fit(cfg, build_model(cfg), progress=False)
    calls, real_step = {"n": 0}, train.step

    def signalled_at_step_7(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            os.kill(os.getpid(), getattr(signal, signal_name))
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "step", signalled_at_step_7)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(signals.Stopped, match=rf"^{signal_name} at step 7 of 12; its checkpoint is saved"):
        fit(cfg, build_model(cfg), progress=False, checkpoint_dir=tmp_path)
    assert signal.getsignal(signal.SIGTERM) is before
    assert torch.load(tmp_path / train.CHECKPOINT_FILE, weights_only=True)["steps"] == 7
    monkeypatch.setattr(train, "step", real_step)
    resumed = fit(cfg, build_model(cfg), progress=False, checkpoint_dir=tmp_path)
    assert resumed.resumed_from_step == 7
    assert (resumed.train_loss, resumed.test_accuracy) == (whole.train_loss, whole.test_accuracy)  # bitwise


def test_a_signal_before_training_starts_stops_the_run_at_its_first_step_with_a_checkpoint(tiny_cfg, tmp_path):
    """`vitlab train` catches the signals from its start: SLURM's warning can come while the process
    still imports, and is then kept for the first step instead of killing it with nothing saved."""
    import os
    import signal

    from vitlab.run import signals

    with signals.caught():
        os.kill(os.getpid(), signal.SIGUSR1)
        with pytest.raises(signals.Stopped, match=r"^SIGUSR1 at step 1 of 4; its checkpoint is saved"):
            fit(tiny_cfg, build_model(tiny_cfg), progress=False, checkpoint_dir=tmp_path)
    assert torch.load(tmp_path / train.CHECKPOINT_FILE, weights_only=True)["steps"] == 1
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
