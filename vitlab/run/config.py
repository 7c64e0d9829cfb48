"""One run's configuration: a dataclass validated once, hashed into its run id."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, fields

from vitlab.run import datasets
from vitlab.run.checks import ConfigError, choice, did_you_mean
from vitlab.run.families import FAMILIES
from vitlab.run.presets import PRESETS

OPTIMIZERS = ("adamw", "sgd")
DECAYS = ("cosine", "linear")
PRECISIONS = ("fp32", "bf16", "fp16")
ARCH_FIELDS = sorted(set().union(*(f.fields for f in FAMILIES.values())))
# Fields added after runs were first recorded, with the default those runs had: a run id hashes
# them only when set otherwise, so every earlier run keeps its id (and its record still matches).
ADDED_FIELDS = {"compile": False}
# Heads that are not set follow the width at this head size (the paper's ViT-B and ViT-L have 64;
# 16 suits the CPU micro sizes), so that width, heads and MLP size scale apart: a width sweep
# keeps its head size, and MLP size stays where it was set.
HEAD_SIZE = 16


@dataclass(frozen=True)
class RunConfig:
    model: str = "vit"
    preset: str | None = None  # a name from `vitlab models`; fields set beside it override it
    depth: int = 4
    width: int = 64
    heads: int | None = None  # None: width / HEAD_SIZE, the nearest that divides the width
    mlp_dim: int | None = 128
    patch_size: int | None = 7
    pool: str | None = "token"
    pos_embed: str | None = "learn"
    pre_logits: bool | None = False
    stem: str | None = None  # ResNet / hybrid trunk: small (28-32 px, the default) or imagenet
    cnn_depth: int | None = None  # the hybrid's ResNet trunk (default 8)
    cnn_width: int | None = None  # (default 8)
    dataset: str = "mnist5k"
    pretrained: str | None = None  # run id of a recorded run whose weights start this one (fine-tuning)
    image_size: int | None = None  # None: the dataset's own; else images are resized once
    train_size: int = 3500  # images of the training pool (less its validation split), nested subsets
    epochs: int = 50
    steps: int | None = None  # a step budget; when set it replaces epochs (0: no training)
    batch_size: int = 64  # images per optimiser step, over all processes
    grad_accum: int = 1  # micro-batches per step (batch_size / grad_accum images each), to fit memory
    optimizer: str = "adamw"  # adamw (beta1 0.9, beta2 0.999; the paper's pre-training) or sgd (momentum 0.9; its fine-tuning)
    lr: float = 5e-3
    decay: str = "linear"  # after warm-up: cosine or linear (the paper's pre-training) to zero
    weight_decay: float = 0.05
    warmup: float = 0.05  # fraction of the training steps spent warming up
    precision: str = "fp32"  # fp32, bf16 or fp16 mixed precision (fp16 needs a GPU)
    label_smoothing: float = 0.1
    augment: bool = True  # random crops after padding (and flips, for photos); short budgets do better without
    seed: int = 0
    compile: bool = False  # torch.compile the model (worth it on a GPU for long runs; minutes of compiling first)

    def __post_init__(self):
        family = FAMILIES.get(self.model)
        if self.heads is None and family is not None and "heads" in family.fields and self.width >= 1:
            object.__setattr__(self, "heads", heads_for(self.width))

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        """Build and validate from plain values (a params file, papermill parameters)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(unknown[0], f"unknown field{did_you_mean(unknown[0], known)} (allowed: {', '.join(known)})")
        values = {name: _coerce(name, value, known[name].type) for name, value in values.items()}
        if values.get("preset") is not None:
            if values["preset"] not in PRESETS:
                raise ConfigError("preset", f"unknown preset {values['preset']!r} (see `vitlab models`)")
            values = {**PRESETS[values["preset"]]["arch"], **values}
        cfg = cls(**values)
        choice("model", cfg.model, tuple(FAMILIES))
        family = FAMILIES[cfg.model]
        cfg = dataclasses.replace(cfg, **{k: None for k in ARCH_FIELDS if k not in family.fields},
                                  **{k: v for k, v in family.defaults.items() if getattr(cfg, k) is None})
        cfg.validate()
        return cfg

    @classmethod
    def from_namespace(cls, namespace: dict) -> "RunConfig":
        """Build and validate from the fields found in a namespace (a notebook's globals after its
        parameters cell); a field it lacks takes its default."""
        return cls.from_dict({f.name: namespace[f.name] for f in fields(cls) if f.name in namespace})

    @property
    def input_size(self) -> int:
        return self.image_size or datasets.spec(self.dataset).image_size

    def arch(self) -> dict:
        """The architecture fields that models.create takes."""
        return {k: getattr(self, k) for k in ("model", "depth", "width", *FAMILIES[self.model].fields)}

    def validate(self) -> None:
        choice("model", self.model, tuple(FAMILIES))
        try:
            datasets.spec(self.dataset)
        except KeyError:
            raise ConfigError("dataset", f"{self.dataset!r} is not one of {', '.join(datasets.names())}") from None
        except datasets.DatasetMissing as e:
            raise ConfigError("dataset", str(e).removeprefix(f"dataset {self.dataset}: ")) from None
        choice("optimizer", self.optimizer, OPTIMIZERS)
        choice("decay", self.decay, DECAYS)
        choice("precision", self.precision, PRECISIONS)
        for name in ("depth", "width", "epochs", "batch_size", "train_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        spec = datasets.spec(self.dataset)
        if self.train_size > spec.n_train:
            raise ConfigError("train_size", f"{self.dataset} has {spec.n_train:,} training images ({spec.train_pool:,} less "
                              f"a validation split of {spec.n_val:,}), got {self.train_size}")
        if self.train_size < spec.num_classes:
            raise ConfigError("train_size", f"needs at least one image per class ({spec.num_classes}), got {self.train_size}")
        if self.pretrained is not None and not re.fullmatch(r"[0-9a-f]{12}", self.pretrained):
            raise ConfigError("pretrained", f"a run id (12 hex digits, see `vitlab results DIR`), got {self.pretrained!r}")
        if self.batch_size % self.grad_accum:
            raise ConfigError("grad_accum", f"must divide batch_size {self.batch_size}, got {self.grad_accum}")
        if self.lr <= 0:
            raise ConfigError("lr", f"must be > 0, got {self.lr}")
        if self.steps is not None and self.steps < 0:
            raise ConfigError("steps", f"must be >= 0 (0: evaluate at initialisation) or null (use epochs), got {self.steps}")
        if self.weight_decay < 0:
            raise ConfigError("weight_decay", f"must be >= 0, got {self.weight_decay}")
        if not 0 <= self.warmup < 1:
            raise ConfigError("warmup", f"a fraction of the steps in [0, 1), got {self.warmup}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError("label_smoothing", f"must be in [0, 1), got {self.label_smoothing}")
        if self.image_size is not None and self.image_size < 1:
            raise ConfigError("image_size", f"must be >= 1 or null (the dataset's own), got {self.image_size}")
        FAMILIES[self.model].check(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def run_id(self) -> str:
        """Stable across processes and versions: sha256 of the canonical JSON of every field."""
        values = {k: v for k, v in self.to_dict().items() if not (k in ADDED_FIELDS and v == ADDED_FIELDS[k])}
        canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def heads_for(width: int) -> int:
    """The heads a width gets when they are not set: the divisor of the width nearest (in ratio)
    to width / HEAD_SIZE."""
    divisors = [d for d in range(1, width + 1) if width % d == 0]
    return min(divisors, key=lambda d: (abs(math.log(d * HEAD_SIZE / width)), d))


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
