"""What a foreign checkpoint describes, in maest's terms, and the maest model config built from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # VideoMAE and Hugging Face inputs


@dataclass
class Imported:
    """A converted checkpoint before it becomes a maest model.

    Attributes:
        kind: "mae" or "classifier".
        encoder, decoder: fields of maest's ``EncoderConfig`` / ``DecoderConfig`` (decoder: MAE only).
        state: weights under maest's parameter names.
        num_classes, label_names, dropout: the classifier's head.
        mask_strategy: the MAE's encoder mask.
        target: the MAE's reconstruction target (a ``TargetConfig`` kind).
        notes: exact transformations applied on the way (reported, never approximations).
    """

    kind: str
    encoder: dict[str, Any]
    decoder: dict[str, Any] | None
    state: dict[str, torch.Tensor]
    num_classes: int = 0
    label_names: list[str] = field(default_factory=list)
    mask_strategy: str = "tube"
    target: str = "videomae_norm_pix"
    notes: list[str] = field(default_factory=list)


def mlp_ratio(hidden: int, dim: int) -> float:
    """The ratio whose ``int(dim * ratio)`` (how blocks size their MLP) gives back ``hidden``."""
    r = hidden / dim
    return r if int(dim * r) == hidden else (hidden + 0.5) / dim


def build_config(imp: Imported, name: str | None = None) -> Any:
    """The maest ``MAEConfig`` / ``ClassifierConfig`` describing ``imp`` (validated)."""
    from maest.models.encoder import EncoderConfig
    from maest.models.mae import DecoderConfig, MAEConfig
    from maest.models.masking import MaskConfig
    from maest.models.vit import ClassifierConfig
    from maest.targets import TargetConfig

    enc = EncoderConfig(**imp.encoder)
    if imp.kind == "mae":
        kw: dict[str, Any] = dict(name=name or "converted_mae", encoder=enc, decoder=DecoderConfig(**imp.decoder))
        kw.update(mask=MaskConfig(strategy=imp.mask_strategy), target=TargetConfig(kind=imp.target))
        cfg = MAEConfig(**kw)
    else:
        cfg = ClassifierConfig(name=name or "converted_classifier", encoder=enc, num_classes=imp.num_classes,
                               dropout=0.0, drop_path=0.0, label_names=list(imp.label_names))
    return cfg.validate()
