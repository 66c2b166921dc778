"""Job configs: a pre-training or fine-tuning run is its model, data, optim and train sections (plus
mixing for fine-tuning). Each section validates itself once, in its own ``validate()``; a job config
validates its sections and the few rules that tie two of them together. ``--set`` overrides and the
JSON round trip are :mod:`maest.overrides`'; files of earlier versions are read by :mod:`maest.upgrade`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from maest.data.config import DataConfig, FinetuneDataConfig
from maest.models import ClassifierConfig, MAEConfig, model_config
from maest.overrides import check_choice, check_positive
from maest.train.mixup import MixupConfig
from maest.train.optim import build_adamw
from maest.train.schedule import scaled_lr


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

    def validate(self) -> OptimConfig:
        check_choice(self.fused, ("auto", "on", "off"), "optim.fused")
        if self.warmup_epochs < 0 or self.min_lr < 0 or self.blr <= 0:
            raise ValueError("optim.warmup_epochs and optim.min_lr must be >= 0 and optim.blr > 0")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ValueError(f"optim.clip_grad={self.clip_grad} must be > 0, or null to disable clipping")
        return self

    def peak_lr(self, effective_batch: int) -> float:
        """``lr`` when set, else ``blr`` scaled linearly by the effective batch (per 256)."""
        return self.lr if self.lr is not None else scaled_lr(self.blr, effective_batch)

    def build(self, groups: list[dict], lr: float, device: str) -> torch.optim.Optimizer:
        """AdamW over ``groups`` (each may carry ``lr_scale``) at peak ``lr``."""
        return build_adamw(groups, lr, (self.beta1, self.beta2), self.fused, device)


@dataclass
class TrainConfig:
    """The loop: epochs and batches, precision and device, run folder, checkpoints and logging."""

    epochs: int = 100
    max_steps: int | None = None  # stop after this many optimizer steps (the schedule still spans epochs)
    batch_size: int = 2  # videos per process per step; each yields repeat_aug clips
    accum_iter: int = 1
    precision: str = "auto"  # auto | fp32 | bf16
    compile: bool = False
    grad_checkpointing: bool = False  # recompute block activations in backward: less memory, ~30% more time
    device: str = "auto"  # auto | cpu | cuda
    parallel: str = "ddp"  # ddp | fsdp (FSDP2 fully_shard per block) when launched by torchrun
    seed: int = 0
    output_dir: str = "runs/pretrain"
    save_every_steps: int = 0  # 0: at the end of each epoch only
    save_every_minutes: float = 0.0  # also save when this much time passed since the last save (long epochs)
    keep_checkpoints: int = 2
    log_every: int = 10
    tensorboard: bool | None = None  # None: when the package is installed (maest[tensorboard]); true: required
    wandb: bool = False  # also log to Weights & Biases (pip install wandb; WANDB_MODE=offline respected)
    progress: bool = True
    resume: str | None = None  # a checkpoint path, or "auto" for the newest one in output_dir
    overwrite: bool = False  # replace the checkpoints and metrics of an earlier run in output_dir (--overwrite)

    def validate(self) -> TrainConfig:
        for name in ("batch_size", "accum_iter", "epochs", "log_every"):
            check_positive(getattr(self, name), f"train.{name}")
        if self.max_steps is not None:
            check_positive(self.max_steps, "train.max_steps", "or null to run all epochs")
        if self.keep_checkpoints < 0:
            raise ValueError(f"train.keep_checkpoints={self.keep_checkpoints} must be >= 0 (0 keeps them all)")
        if self.save_every_steps < 0:
            raise ValueError(f"train.save_every_steps={self.save_every_steps} must be >= 0 (0: at epoch ends only)")
        if not self.save_every_minutes >= 0:
            raise ValueError(f"train.save_every_minutes={self.save_every_minutes} must be >= 0 (0: no timed saves)")
        if not self.output_dir:
            raise ValueError("train.output_dir is empty; pass --output-dir")
        check_choice(self.precision, ("auto", "fp32", "bf16"), "train.precision")
        check_choice(self.device, ("auto", "cpu", "cuda"), "train.device")
        check_choice(self.parallel, ("ddp", "fsdp"), "train.parallel")
        return self


class JobConfig:
    """What every job config shares: its JSON form (stored in run folders and checkpoints)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class PretrainConfig(JobConfig):
    model: MAEConfig = field(default_factory=lambda: model_config("mae_vit_base_patch16"))
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> PretrainConfig:
        self.model.validate()  # the mask ratio included (model.mask.ratio)
        if self.model.target.kind == "features":
            from maest.train.teacher import read_teacher

            read_teacher(self.model)  # the teacher fits the student, and its width sizes the decoder
        self.data.validate()
        if self.model.mask.strategy == "motion" and self.data.motion == "none":
            raise ValueError("model.mask.strategy=motion masks from each clip's motion field, and data.motion=none "
                             "supplies none: set data.motion=codec (the videos' motion vectors) or data.motion=flow")
        if self.data.motion != "none" and self.model.mask.strategy != "motion":
            raise ValueError(f"data.motion={self.data.motion} is read only by model.mask.strategy=motion (now "
                             f"{self.model.mask.strategy!r}); set the strategy to motion or data.motion=none")
        self.optim.validate()
        self.train.validate()
        return self


@dataclass
class FinetuneOptimConfig(OptimConfig):
    """AdamW (0.9, 0.999) with layer-wise lr decay, warmup + cosine (FINETUNE.md's ViT-L recipe)."""

    blr: float = 2.4e-3
    min_lr: float = 1e-6
    beta2: float = 0.999
    clip_grad: float | None = 5.0
    layer_decay: float = 0.75
    # lr multiplier for the classifier head alone (the reference: 1). With a short budget a
    # pre-trained encoder's fresh head (init std 2e-5) lags behind; see benchmarks/README_transfer.md
    head_lr_scale: float = 1.0

    def validate(self) -> FinetuneOptimConfig:
        super().validate()
        if not 0.0 < self.layer_decay <= 1.0:
            raise ValueError(f"optim.layer_decay={self.layer_decay} must be in (0, 1] (official: 0.75)")
        if self.head_lr_scale <= 0:
            raise ValueError(f"optim.head_lr_scale={self.head_lr_scale} must be > 0 (1 keeps the reference's head lr)")
        return self


def classifier_from_data(name: str) -> ClassifierConfig:
    """The registered classifier ``name`` with ``num_classes`` 0: as many classes as the training data
    has (class folders, a classes.txt beside the list, the labels), resolved when the job starts."""
    cfg = model_config(name)
    cfg.num_classes = 0
    return cfg


@dataclass
class FinetuneConfig(JobConfig):
    model: ClassifierConfig = field(default_factory=lambda: classifier_from_data("vit_large_patch16"))
    data: FinetuneDataConfig = field(default_factory=FinetuneDataConfig)
    optim: FinetuneOptimConfig = field(default_factory=FinetuneOptimConfig)
    mix: MixupConfig = field(default_factory=MixupConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=50, output_dir="runs/finetune"))
    init: str = ""  # pre-training checkpoint, whose encoder geometry the classifier inherits; empty: from scratch

    def validate(self) -> FinetuneConfig:
        self.train.validate()
        self.model.validate()
        if self.train.parallel != "ddp":
            # multi-view validation runs a different number of batches per rank, which FSDP's
            # per-block all-gathers cannot do; until it pads them, say so rather than fall back silently
            raise ValueError(f"train.parallel={self.train.parallel} is for pre-training only; fine-tuning and "
                             "probing run DDP under torchrun (drop the setting, or set "
                             "train.grad_checkpointing=true to save memory)")
        self.data.validate()
        self.optim.validate()
        self.mix.validate()
        return self
