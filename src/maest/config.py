"""Typed run configuration: nested dataclasses, ``--set section.key=value`` overrides with type
checking, validation with actionable messages, and JSON round-trip (stored in runs and checkpoints).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ModelConfig:
    """Model name plus optional overrides of its registered geometry (None keeps the default)."""

    name: str = "base"
    img_size: int | None = None
    patch_size: int | None = None
    num_frames: int | None = None
    t_patch_size: int | None = None
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    decoder_embed_dim: int | None = None
    decoder_depth: int | None = None
    decoder_num_heads: int | None = None
    pred_t_dim: int | None = None
    pos_embed_type: str | None = None
    cls_embed: bool | None = None
    mask_strategy: str | None = None
    mlp_ratio: float | None = None
    qkv_bias: bool | None = None
    norm_eps: float | None = None
    final_norm_eps: float | None = None
    decoder_norm_eps: float | None = None
    grad_checkpointing: bool = False

    def overrides(self) -> dict[str, Any]:
        skip = {"name", "grad_checkpointing"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip and v is not None}


@dataclass
class DataConfig:
    """Where clips come from and how they are sampled (MAE-ST defaults: 16x4, repeated sampling 4)."""

    source: str = ""  # a CSV list, a folder of class folders, or a folder of videos
    layout: str = "auto"  # auto | csv | folder | unlabelled
    sampling_rate: int = 4
    repeat_aug: int = 4
    num_workers: int = 2
    backend: str = "auto"  # auto | torchcodec | pyav


@dataclass
class OptimConfig:
    """AdamW with per-iteration warmup + half-cycle cosine (the reference's PRETRAIN.md recipe)."""

    blr: float = 1.6e-3  # base lr: lr = blr * effective_batch / 256 unless ``lr`` is set
    lr: float | None = None
    min_lr: float = 0.0
    weight_decay: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.95
    warmup_epochs: float = 5.0
    clip_grad: float | None = 0.02
    fused: str = "auto"  # auto | on | off: fused AdamW where the device supports it


@dataclass
class TrainConfig:
    epochs: int = 100
    max_steps: int | None = None  # stop after this many optimizer steps (the schedule still spans epochs)
    batch_size: int = 2  # videos per process per step; each yields repeat_aug clips
    accum_iter: int = 1
    mask_ratio: float = 0.9
    norm_pix_loss: bool = True
    precision: str = "auto"  # auto | fp32 | bf16
    compile: bool = False
    device: str = "auto"  # auto | cpu | cuda
    parallel: str = "ddp"  # ddp | fsdp (FSDP2 fully_shard per block) when launched by torchrun
    seed: int = 0
    output_dir: str = "runs/pretrain"
    save_every_steps: int = 0  # 0: at the end of each epoch only
    keep_checkpoints: int = 2
    log_every: int = 10
    tensorboard: bool = True
    wandb: bool = False  # also log to Weights & Biases (pip install wandb; WANDB_MODE=offline respected)
    progress: bool = True
    resume: str | None = None  # a checkpoint path, or "auto" for the newest one in output_dir


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> PretrainConfig:
        t, o, d = self.train, self.optim, self.data
        if not 0.0 < t.mask_ratio < 1.0:
            raise ValueError(f"train.mask_ratio={t.mask_ratio} must be strictly between 0 and 1 (paper: 0.9)")
        _positive(t.batch_size, "train.batch_size")
        _positive(t.accum_iter, "train.accum_iter")
        _positive(t.epochs, "train.epochs")
        _positive(d.repeat_aug, "data.repeat_aug")
        _positive(d.sampling_rate, "data.sampling_rate")
        _choice(t.precision, ("auto", "fp32", "bf16"), "train.precision")
        _choice(t.device, ("auto", "cpu", "cuda"), "train.device")
        _choice(t.parallel, ("ddp", "fsdp"), "train.parallel")
        _choice(d.layout, ("auto", "csv", "folder", "unlabelled"), "data.layout")
        _choice(o.fused, ("auto", "on", "off"), "optim.fused")
        if o.warmup_epochs < 0 or o.min_lr < 0 or o.blr <= 0:
            raise ValueError("optim.warmup_epochs and optim.min_lr must be >= 0 and optim.blr > 0")
        if o.clip_grad is not None and o.clip_grad <= 0:
            raise ValueError(f"optim.clip_grad={o.clip_grad} must be > 0, or null to disable clipping")
        return self


def _positive(value: int, name: str) -> None:
    if value < 1:
        raise ValueError(f"{name}={value} must be a positive integer")


def _choice(value: str, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {choices}")


def _coerce(text: str, hint: Any, key: str) -> Any:
    """Parse ``text`` as the annotated type (int, float, bool, str, or Optional of those)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null"):
            if type(None) in args:
                return None
        hint = next(a for a in args if a is not type(None))
    if hint is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key}={text!r}: expected true or false")
    try:
        return hint(text)
    except (TypeError, ValueError):
        raise ValueError(f"{key}={text!r}: expected a value of type {hint.__name__}") from None


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """Apply ``section.key=value`` strings in place; unknown keys and bad values raise ValueError."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.key=value, e.g. train.epochs=10")
        path, text = item.split("=", 1)
        *parents, leaf = path.strip().split(".")
        target = cfg
        for name in parents:
            if not dataclasses.is_dataclass(target) or not hasattr(target, name):
                raise ValueError(f"unknown config section {name!r} in {path!r}; known: {_fields(target)}")
            target = getattr(target, name)
        if not dataclasses.is_dataclass(target) or leaf not in {f.name for f in dataclasses.fields(target)}:
            raise ValueError(f"unknown config key {path!r}; known keys here: {_fields(target)}")
        hint = typing.get_type_hints(type(target))[leaf]
        if dataclasses.is_dataclass(hint):
            raise ValueError(f"{path!r} is a section; set one of its keys, e.g. {path}.{_fields(hint)[0]}=...")
        setattr(target, leaf, _coerce(text.strip(), hint, path))
    return cfg


def _fields(obj: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(obj)] if dataclasses.is_dataclass(obj) else []


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a (nested) config dataclass from ``asdict`` output; unknown keys raise."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown keys for {cls.__name__}: {sorted(unknown)}")
    kw = {k: from_dict(hints[k], v) if dataclasses.is_dataclass(hints[k]) else v for k, v in data.items()}
    return cls(**kw)


def save_json(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")


def load_json(cls: type, path: str | Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {p} does not exist")
    return from_dict(cls, json.loads(p.read_text()))
