"""A run's weights exported for use outside vitlab: timm alone loads them and gives the same logits."""
import json
import subprocess
import sys

import torch

from vitlab import cli
from vitlab.run.config import RunConfig
from vitlab.run.models import build_model
from vitlab.study import export, results
from vitlab.study.plans import load_plan

# Run in a fresh process: timm and torch only, so nothing of vitlab can help the load. One line
# of logits per exported folder named.
TIMM_ALONE = """
import sys, timm, torch
for folder in sys.argv[1:]:
    model = timm.create_model("local-dir:" + folder, pretrained=True).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        print(model(torch.randn(4, *model.pretrained_cfg["input_size"])).tolist())
assert not any(name.startswith("vitlab") for name in sys.modules)
"""


def _recorded(tmp_path, **fields) -> RunConfig:
    """A run recorded with weights: its seeded initial weights, each nudged so none is a default."""
    cfg = RunConfig.from_dict({"depth": 2, "width": 32, "mlp_dim": 61, "steps": 10, **fields})
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    results.write(tmp_path, results.make_record(cfg, status="ok") | {"test_accuracy": 0.9, "val_accuracy": 0.91,
                                                                     "n_params": 1, "train_flops": 1e12})
    results.save_weights(tmp_path, cfg.run_id, model)
    return cfg


def _logits(model) -> list:
    torch.manual_seed(0)
    with torch.no_grad():
        return model(torch.randn(4, 1, 28, 28)).tolist()


VARIANTS = ({}, {"pos_embed": "sincos2d", "pool": "avg"}, {"pos_embed": "none", "heads": 1})


def test_timm_alone_loads_an_exported_vit_and_gives_its_logits(tmp_path, capsys):
    """Each variant exported, then all loaded by timm alone in one fresh process."""
    exported = []
    for i, fields in enumerate(VARIANTS):
        cfg = _recorded(tmp_path / "results", **fields)
        out = tmp_path / f"export{i}"
        assert cli.main(["export", cfg.run_id, str(out), "--results", str(tmp_path / "results")]) == 0
        assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors", "params.yaml"]
        config = json.loads((out / "config.json").read_text())
        assert config["architecture"] == export.TIMM_VIT and config["num_classes"] == 10
        assert config["model_args"]["embed_dim"] == 32 and config["pretrained_cfg"]["input_size"] == [1, 28, 28]
        card = capsys.readouterr().out
        assert "Test accuracy 0.900 (95% interval 0.88" in card and 'timm.create_model("local-dir:' in card
        assert ("fixed 2-D sin-cos table" in card) == (fields.get("pos_embed") == "sincos2d")
        assert load_plan(out / "params.yaml").runs[0].run_id == cfg.run_id  # the params file reproduces the run
        exported.append((cfg, out))
    loaded = subprocess.run([sys.executable, "-c", TIMM_ALONE, *(str(out) for _, out in exported)],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(loaded) == len(VARIANTS)
    for (cfg, _), logits in zip(exported, loaded):
        _, model = results.load_model(tmp_path / "results", cfg.run_id)
        assert torch.allclose(torch.tensor(json.loads(logits)), torch.tensor(_logits(model)), atol=1e-5), cfg


def test_a_model_timm_cannot_build_is_exported_with_vitlabs_config_and_the_card_says_why(tmp_path):
    cfg = _recorded(tmp_path, pos_embed="learn2d")
    card = export.export(tmp_path, cfg.run_id, tmp_path / "out").read_text()
    assert "timm alone cannot build this model: timm has no learned 2-D position embedding" in card
    assert "architecture" not in json.loads((tmp_path / "out" / "config.json").read_text())
    _, model = results.load_model(tmp_path, cfg.run_id)
    assert _logits(export.load(tmp_path / "out")) == _logits(model)
    assert export.timm_lacks(RunConfig.from_dict({"model": "resnet", "depth": 8, "width": 8})).startswith(
        "timm builds no ResNet-v2 with vitlab's 3x3 stride-1 stem")


def test_exporting_a_run_that_is_not_recorded_is_one_line(tmp_path, capsys):
    assert cli.main(["export", "0123456789ab", str(tmp_path / "out"), "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no record of run 0123456789ab" in err and not (tmp_path / "out").exists()
