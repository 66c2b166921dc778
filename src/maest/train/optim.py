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
    """AdamW, fused where possible (``fused``: auto | on | off).

    The fused kernel runs on CUDA and on CPU (about 4x faster than foreach for ViT-B's 100M
    parameters on 2 CPU cores); FSDP2's sharded DTensor parameters use foreach.
    """
    params = [p for g in groups for p in g["params"]]
    sharded = any(type(p).__name__ == "DTensor" for p in params)
    use_fused = fused == "on" or (fused == "auto" and not sharded and device.split(":")[0] in ("cuda", "cpu"))
    kwargs = {"fused": True} if use_fused else {"foreach": True}
    return torch.optim.AdamW(groups, lr=lr, betas=betas, **kwargs)


def layer_id(name: str, num_layers: int) -> int:
    """Depth of a parameter for layer-wise lr decay (MAE's ``get_layer_id_for_vit``): tokens, patch
    and positional embeddings -> 0, ``blocks.i`` -> i + 1, everything else (norm, head) -> num_layers."""
    if name.startswith(("cls_token", "mask_token", "patch_embed", "pos_embed")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return num_layers


def param_groups_layer_decay(
    model: nn.Module, weight_decay: float, layer_decay: float = 0.75, num_layers: int | None = None,
    head_lr_scale: float = 1.0,
) -> list[dict]:
    """Parameter groups with per-layer ``lr_scale = layer_decay ** (num_layers - layer_id)``, as the
    reference's ``param_groups_lrd``: num_layers = depth + 1; no weight decay for 1-D parameters,
    ``cls_token`` and ``pos_embed*``. Frozen parameters are left out. The training loop sets each
    group's lr to ``lr * lr_scale``. ``head_lr_scale`` multiplies the classifier head's (``head.*``)
    scale on top; the reference has none (1.0)."""
    if num_layers is None:
        num_layers = len(getattr(model, "blocks", [])) + 1
    groups: dict[tuple[int, bool, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim == 1 or name == "cls_token" or name.startswith("pos_embed")
        lid = layer_id(name, num_layers)
        # the head gets its own groups only when scaled, so default groups (and old optimizer states) stay as they were
        head = head_lr_scale != 1.0 and name.startswith("head.")
        g = groups.setdefault((lid, head, no_decay), {
            "params": [], "weight_decay": 0.0 if no_decay else weight_decay,
            "lr_scale": layer_decay ** (num_layers - lid) * (head_lr_scale if head else 1.0), "layer_id": lid,
        })
        g["params"].append(p)
    return [groups[k] for k in sorted(groups)]
