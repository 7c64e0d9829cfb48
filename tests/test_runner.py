"""One run from its config to its record: its model started from its seed or another run's weights."""
import pytest
import torch

from vitlab.run.config import RunConfig
from vitlab.run.models import build_model
from vitlab.study import results, runner


def test_fine_tuning_starts_from_a_recorded_runs_weights(tmp_path):
    source = RunConfig.from_dict({"depth": 1, "width": 16, "heads": 2, "mlp_dim": 32, "patch_size": 7, "seed": 3})
    model = build_model(source)
    target = RunConfig.from_dict({**source.to_dict(), "dataset": "digits", "image_size": 14, "train_size": 100,
                                  "seed": 0, "pretrained": source.run_id})
    with pytest.raises(FileNotFoundError, match=f"pretrained: run {source.run_id} has no record"):
        runner.start_model(tmp_path, target)
    results.save_weights(tmp_path, source.run_id, model)
    results.write(tmp_path, results.make_record(source, status="ok"))
    tuned = runner.start_model(tmp_path, target)
    assert torch.equal(tuned.blocks[0].attn.qkv.weight, model.blocks[0].attn.qkv.weight)
    assert tuned.head.weight.abs().sum() == 0
