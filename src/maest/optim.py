"""Optimizer construction: weight-decay parameter groups and AdamW."""

from __future__ import annotations

import torch
from torch import nn


def param_groups_weight_decay(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups, as the reference's ``add_weight_decay``: no decay for 1-D parameters and every
    ``.bias``; everything else (including positional embeddings, cls and mask tokens) decays."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [
        {"params": no_decay, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
    ]


def build_adamw(
    groups: list[dict], lr: float, betas: tuple[float, float], fused: str = "auto", device: str = "cpu"
) -> torch.optim.AdamW:
    """AdamW, fused where the device supports it (``fused``: auto | on | off)."""
    use_fused = fused == "on" or (fused == "auto" and device.startswith("cuda"))
    kwargs = {"fused": True} if use_fused else {"foreach": True}
    return torch.optim.AdamW(groups, lr=lr, betas=betas, **kwargs)
