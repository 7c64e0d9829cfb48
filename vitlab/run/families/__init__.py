"""The model families, one file each (vit, resnet, hybrid): adding a family is one file declaring
its Family, one line below, and its presets. No torch on import."""
from __future__ import annotations

from vitlab.run.families import hybrid, resnet, vit
from vitlab.run.families.family import Family

FAMILIES: dict[str, Family] = {f.name: f for f in (vit.FAMILY, resnet.FAMILY, hybrid.FAMILY)}


def label(model: str) -> str:
    """How the report names a family ("ViT", "ResNet", "hybrid"); an unknown name as it is."""
    return FAMILIES[model].label if model in FAMILIES else model
