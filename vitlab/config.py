"""One run's configuration: a dataclass validated once, hashed into its run id."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields

from vitlab import data

MODELS = ("vit", "resnet")
VIT_MODELS = ("vit",)
POOLS = ("token", "avg")
# Fields that only mean something for a ViT; a ResNet run stores them as None so
# that two ResNet runs differing only there share one run id.
VIT_ONLY = ("heads", "mlp_dim", "patch_size", "pool")


class ConfigError(ValueError):
    """A one-line message naming the field and what is allowed."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class RunConfig:
    model: str = "vit"
    depth: int = 4
    width: int = 64
    heads: int | None = 4
    mlp_dim: int | None = 128
    patch_size: int | None = 7
    pool: str | None = "token"
    dataset: str = "mnist5k"
    train_size: int = 4000
    epochs: int = 10
    steps: int | None = None  # a step budget; when set it replaces epochs
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # fraction of the training steps spent warming up
    label_smoothing: float = 0.1
    augment: bool = False  # random crops; pays off only with long training (ViTs lack translation bias)
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        """Build and validate from plain values (a params file, papermill parameters)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(unknown[0], f"unknown field (allowed: {', '.join(known)})")
        values = {name: _coerce(name, value, known[name].type) for name, value in values.items()}
        cfg = cls(**values)
        if cfg.model not in VIT_MODELS:
            cfg = dataclasses.replace(cfg, **{k: None for k in VIT_ONLY})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        _choice("model", self.model, MODELS)
        _choice("dataset", self.dataset, tuple(data.DATASETS))
        for name in ("depth", "width", "epochs", "batch_size", "train_size"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        spec = data.DATASETS[self.dataset]
        if self.train_size > spec.train_pool:
            raise ConfigError("train_size", f"{self.dataset} has {spec.train_pool} training images, got {self.train_size}")
        if self.train_size < spec.num_classes:
            raise ConfigError("train_size", f"needs at least one image per class ({spec.num_classes}), got {self.train_size}")
        if self.lr <= 0:
            raise ConfigError("lr", f"must be > 0, got {self.lr}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError("steps", f"must be >= 1 or null (use epochs), got {self.steps}")
        if self.weight_decay < 0:
            raise ConfigError("weight_decay", f"must be >= 0, got {self.weight_decay}")
        if not 0 <= self.warmup < 1:
            raise ConfigError("warmup", f"a fraction of the steps in [0, 1), got {self.warmup}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError("label_smoothing", f"must be in [0, 1), got {self.label_smoothing}")
        if self.model in VIT_MODELS:
            for name in ("heads", "mlp_dim", "patch_size"):
                if getattr(self, name) is None or getattr(self, name) < 1:
                    raise ConfigError(name, f"a ViT needs a positive {name}, got {getattr(self, name)}")
            _choice("pool", self.pool, POOLS)
            if spec.image_size % self.patch_size:
                raise ConfigError("patch_size", f"{self.patch_size} does not divide the {spec.image_size} px images of {self.dataset}"
                                  f" (allowed: {', '.join(str(p) for p in divisors(spec.image_size))})")
            if self.width % self.heads:
                raise ConfigError("heads", f"width {self.width} is not divisible by heads {self.heads}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def run_id(self) -> str:
        """Stable across processes and versions: sha256 of the canonical JSON of every field."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _choice(name, value, allowed):
    if value not in allowed:
        raise ConfigError(name, f"{value!r} is not one of {', '.join(map(str, allowed))}")


_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _coerce(name: str, value, annotation: str):
    """Check a value's type; floats are stored as float so that 1 and 1.0 hash alike."""
    base = annotation.split("|")[0].strip()
    if value is None:
        if "None" in annotation:
            return None
        raise ConfigError(name, f"must be a {base}, got nothing")
    if base == "float" and isinstance(value, str):
        # YAML 1.1 reads 1e-3 (no dot) as a string; accept it as the number it means.
        try:
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, _TYPES[base]) or (base != "bool" and isinstance(value, bool)):
        raise ConfigError(name, f"must be a {base}, got {type(value).__name__} {value!r}")
    return float(value) if base == "float" else value
