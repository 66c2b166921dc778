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

from maest.models import ClassifierConfig, MAEConfig, model_config
from maest.models.factory import apply_flat_overrides
from maest.models.masking import num_keep


@dataclass
class DataConfig:
    """Where clips come from and how they are sampled (MAE-ST defaults: 16x4, repeated sampling 4)."""

    source: str = ""  # a CSV list, a folder of class folders, a folder of videos, or shards (see maest shard)
    layout: str = "auto"  # auto | csv | folder | unlabelled | shards
    sampling_rate: int = 4
    repeat_aug: int = 4
    num_workers: int = 2
    backend: str = "auto"  # auto | torchcodec | pyav
    decode_device: str = "cpu"  # cpu | cuda (torchcodec on the GPU; use num_workers=0)
    shuffle_buffer: int = 64  # shards: encoded samples held per loader worker for the in-stream shuffle


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
    precision: str = "auto"  # auto | fp32 | bf16
    compile: bool = False
    grad_checkpointing: bool = False  # recompute block activations in backward: less memory, ~30% more time
    device: str = "auto"  # auto | cpu | cuda
    parallel: str = "ddp"  # ddp | fsdp (FSDP2 fully_shard per block) when launched by torchrun
    seed: int = 0
    output_dir: str = "runs/pretrain"
    save_every_steps: int = 0  # 0: at the end of each epoch only
    keep_checkpoints: int = 2
    log_every: int = 10
    tensorboard: bool | None = None  # None: when the package is installed (maest[tensorboard]); true: required
    wandb: bool = False  # also log to Weights & Biases (pip install wandb; WANDB_MODE=offline respected)
    progress: bool = True
    resume: str | None = None  # a checkpoint path, or "auto" for the newest one in output_dir
    overwrite: bool = False  # replace the checkpoints and metrics of an earlier run in output_dir (--overwrite)

    def validate(self) -> TrainConfig:
        """The settings every job shares (pre-training, fine-tuning, probing)."""
        for name in ("batch_size", "accum_iter", "epochs", "log_every"):
            _positive(getattr(self, name), f"train.{name}")
        if self.max_steps is not None:
            _positive(self.max_steps, "train.max_steps", "or null to run all epochs")
        if self.keep_checkpoints < 0:
            raise ValueError(f"train.keep_checkpoints={self.keep_checkpoints} must be >= 0 (0 keeps them all)")
        if self.save_every_steps < 0:
            raise ValueError(f"train.save_every_steps={self.save_every_steps} must be >= 0 (0: at epoch ends only)")
        if not self.output_dir:
            raise ValueError("train.output_dir is empty; pass --output-dir")
        return self


@dataclass
class PretrainConfig:
    model: MAEConfig = field(default_factory=lambda: model_config("mae_vit_base_patch16"))
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> PretrainConfig:
        t, o, d = self.train, self.optim, self.data
        self.model.validate()
        t.validate()
        if not 0.0 < t.mask_ratio < 1.0:
            raise ValueError(f"train.mask_ratio={t.mask_ratio} must be strictly between 0 and 1 (paper: 0.9)")
        # the encoder strategy can express the ratio on this grid (running cells: 0.25/0.5/0.75)
        num_keep(t.mask_ratio, self.model.encoder.grid, self.model.mask.strategy)
        _positive(t.batch_size, "train.batch_size")
        _positive(t.accum_iter, "train.accum_iter")
        _positive(t.epochs, "train.epochs")
        _positive(d.repeat_aug, "data.repeat_aug")
        _positive(d.sampling_rate, "data.sampling_rate")
        _choice(t.precision, ("auto", "fp32", "bf16"), "train.precision")
        _choice(t.device, ("auto", "cpu", "cuda"), "train.device")
        _choice(t.parallel, ("ddp", "fsdp"), "train.parallel")
        _choice(d.layout, ("auto", "csv", "folder", "unlabelled", "shards"), "data.layout")
        _choice(d.decode_device, ("cpu", "cuda"), "data.decode_device")
        _positive(d.shuffle_buffer, "data.shuffle_buffer")
        _choice(o.fused, ("auto", "on", "off"), "optim.fused")
        if o.warmup_epochs < 0 or o.min_lr < 0 or o.blr <= 0:
            raise ValueError("optim.warmup_epochs and optim.min_lr must be >= 0 and optim.blr > 0")
        if o.clip_grad is not None and o.clip_grad <= 0:
            raise ValueError(f"optim.clip_grad={o.clip_grad} must be > 0, or null to disable clipping")
        return self


def _positive(value: int, name: str, hint: str = "") -> None:
    if value < 1:
        raise ValueError(f"{name}={value} must be a positive integer" + (f" ({hint})" if hint else ""))


def _choice(value: str, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {choices}")


def _coerce(text: str, hint: Any, key: str) -> Any:
    """Parse ``text`` as the annotated type (int, float, bool, str, Optional of those, or a comma-separated
    tuple / list of them)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (tuple, list):
        parts = [p.strip() for p in text.split(",")] if text.strip() else []
        values = [_coerce(p, args[0], key) for p in parts]
        return tuple(values) if typing.get_origin(hint) is tuple else values
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
            nested = [f"{path.rsplit('.', 1)[0]}.{sub}.{leaf}" for sub in _fields(target)
                      if leaf in _fields(getattr(target, sub))]
            hint = f"; did you mean {nested[0]}?" if nested else f"; known keys here: {_fields(target)}"
            raise ValueError(f"unknown config key {path!r}{hint}")
        hint = typing.get_type_hints(type(target))[leaf]
        if dataclasses.is_dataclass(hint):
            raise ValueError(f"{path!r} is a section; set one of its keys, e.g. {path}.{_fields(hint)[0]}=...")
        value = _coerce(text.strip(), hint, path)
        if leaf == "name" and isinstance(target, (MAEConfig, ClassifierConfig)):
            # a model name stands for its whole registered geometry; later --set keys refine it
            fresh = model_config(value)
            if type(fresh) is not type(target):
                raise ValueError(f"{path}={value!r} is a {type(fresh).__name__[:-6].lower()} model; this job needs "
                                 f"a {type(target).__name__[:-6].lower()} model")
            for f in ("encoder", "decoder"):
                if hasattr(target, f):
                    setattr(target, f, getattr(fresh, f))
        setattr(target, leaf, value)
    return cfg


def _fields(obj: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(obj)] if dataclasses.is_dataclass(obj) else []


def upgrade_model_section(data: dict[str, Any], classifier: bool) -> dict[str, Any]:
    """A ``model`` section of maest 0.1 (a name plus flat, optional geometry overrides) as the
    resolved config of today; a current section is returned unchanged."""
    if "encoder" in data:
        return _mask_target_sections(data)
    flat = {k: v for k, v in data.items() if v is not None and k not in ("grad_checkpointing",)}
    name = flat.pop("name", "vit_large_patch16" if classifier else "mae_vit_base_patch16")
    if classifier and "cls_embed" not in data:
        flat["cls_embed"] = True
    cfg = apply_flat_overrides(model_config(name), **flat)
    return dataclasses.asdict(cfg)


def upgrade_run_config(data: dict[str, Any]) -> dict[str, Any]:
    """A run config dict (pre-training or fine-tuning) from an earlier maest version, brought to the
    current layout: flat model sections resolved, settings that moved between sections moved."""
    data = json.loads(json.dumps(data))  # a deep copy
    model, train = data.get("model", {}), data.get("train", {})
    classifier = "mix" in data
    if "encoder" not in model:
        if model.get("grad_checkpointing"):
            train["grad_checkpointing"] = True
        if not classifier and "norm_pix_loss" in train:
            model["norm_pix_loss"] = train["norm_pix_loss"]
        norm_pix = model.pop("norm_pix_loss", None)
        data["model"] = upgrade_model_section(model, classifier)
        if norm_pix is not None and "target" in data["model"]:
            data["model"]["target"]["kind"] = "norm_pix" if norm_pix else "pixels"
    elif not classifier:
        data["model"] = _mask_target_sections(model)
    train.pop("norm_pix_loss", None)
    return data


def _mask_target_sections(section: dict[str, Any]) -> dict[str, Any]:
    """An MAE section with the flat ``mask_strategy`` / ``norm_pix_loss`` of the first resolved
    configs, moved into its ``mask`` and ``target`` sections."""
    if "mask_strategy" not in section and "norm_pix_loss" not in section:
        return section
    section = dict(section)
    mask, target = dict(section.get("mask", {})), dict(section.get("target", {}))
    if "mask_strategy" in section:
        mask["strategy"] = section.pop("mask_strategy")
    if "norm_pix_loss" in section:
        videomae = target.get("kind", "").startswith("videomae_")
        target["kind"] = ("videomae_" if videomae else "") + ("norm_pix" if section.pop("norm_pix_loss") else "pixels")
    section["mask"], section["target"] = mask, target
    return section


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
    try:
        data = json.loads(p.read_text())
    except UnicodeDecodeError:
        raise ValueError(f"config file {p} is not a text file; pass a config.json written by a maest run") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"config file {p} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
                         "fix it, or start from --preset") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} holds a JSON {type(data).__name__}, not an object of config sections "
                         "(model, data, optim, train)")
    try:
        return from_dict(cls, upgrade_run_config(data))
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise ValueError(f"config file {p}: {e}") from None
