"""Named model presets, read from presets.yaml (data, not code)."""
from __future__ import annotations

from pathlib import Path

import yaml

_DATA = yaml.safe_load((Path(__file__).with_name("presets.yaml")).read_text())


def _expand() -> dict[str, dict]:
    """name -> {"arch": fields a run takes, "shape": the input/output shape it is listed at}."""
    out = {}
    for size, arch in _DATA["vit_sizes"].items():
        for patch in _DATA["vit_patches"]:
            out[f"vit-{size}/{patch}"] = {"arch": {"model": "vit", **arch, "patch_size": patch},
                                          "shape": _DATA["imagenet"]}
    for name, arch in _DATA["presets"].items():
        out[name] = {"arch": arch, "shape": _DATA["imagenet"]}
    for name, arch in _DATA["micro"].items():
        out[name] = {"arch": arch, "shape": _DATA["micro_shape"]}
    return out


PRESETS = _expand()


def table() -> list[dict]:
    """Every preset with its shape, parameter count and forward GFLOPs per image.

    Models are built on the meta device: shapes and FLOPs without allocating weights.
    """
    import torch

    from vitlab.run.flops import forward_flops, n_params
    from vitlab.run.models import create

    rows = []
    for name, preset in PRESETS.items():
        arch, shape = preset["arch"], preset["shape"]
        with torch.device("meta"):
            model = create(**arch, **shape)
        rows.append({
            "name": name, "model": arch["model"], "layers": arch["depth"], "hidden": arch["width"],
            "mlp": arch.get("mlp_dim"), "heads": arch.get("heads"), "patch": arch.get("patch_size"),
            "image_size": shape["image_size"], "params_m": round(n_params(model) / 1e6, 3),
            "gflops": round(forward_flops(model, (shape["channels"], shape["image_size"], shape["image_size"])) / 1e9, 4),
        })
    return rows
