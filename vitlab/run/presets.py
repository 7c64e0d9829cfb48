"""Named model presets, read from presets.yaml (data, not code)."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

_DATA = yaml.safe_load((Path(__file__).with_name("presets.yaml")).read_text())
MEASURED = Path(__file__).with_name("presets_measured.json")


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
    """Every preset with its shape, parameter count and forward GFLOPs per image: the counts from
    presets_measured.json (kept equal to measure()'s by a test), so that `vitlab models` loads no
    torch; a preset missing there is measured."""
    known = json.loads(MEASURED.read_text()) if MEASURED.is_file() else {}
    return [_row(name, known[name] if name in known else measure(name)) for name in PRESETS]


def measure(name: str) -> dict:
    """A preset's parameter count and forward GFLOPs per image, from its model built on the meta
    device (shapes, no weights)."""
    import torch

    from vitlab.run.flops import forward_flops, n_params
    from vitlab.run.models import create

    arch, shape = PRESETS[name]["arch"], PRESETS[name]["shape"]
    with torch.device("meta"):
        model = create(**arch, **shape)
    return {"params_m": round(n_params(model) / 1e6, 3),
            "gflops": round(forward_flops(model, (shape["channels"], shape["image_size"], shape["image_size"])) / 1e9, 4)}


def _row(name: str, counts: dict) -> dict:
    arch, shape = PRESETS[name]["arch"], PRESETS[name]["shape"]
    return {"name": name, "model": arch["model"], "layers": arch["depth"], "hidden": arch["width"],
            "mlp": arch.get("mlp_dim"), "heads": arch.get("heads"), "patch": arch.get("patch_size"),
            "image_size": shape["image_size"], **counts}


if __name__ == "__main__":  # python -m vitlab.run.presets: measure every preset again into MEASURED
    MEASURED.write_text(json.dumps({name: measure(name) for name in PRESETS}, indent=1) + "\n")
    print(f"wrote {MEASURED}")
