"""Official MAE-ST checkpoints (facebookresearch/mae_st ``{"model": ...}``; SlowFast ``{"model_state": ...}``)
use maest's own parameter names; fine-tuning checkpoints may name the head ``head.projection``."""

from __future__ import annotations

import torch
from torch import nn

from maest.checkpoint import model_state
from maest.convert.accounting import KeyMap


def from_official(ckpt: dict, model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict for ``model`` (an MAE or a classifier) from an official checkpoint dict.

    Pre-training checkpoints converted into a classifier drop the decoder and mask token (listed and
    consumed explicitly); anything else left over is an error.
    """
    km = KeyMap(model_state(ckpt), "official MAE-ST checkpoint")
    target = model.state_dict()
    for key in list(km.source):
        dst = key.replace("head.projection.", "head.")
        if dst in target:
            km.move(key, dst)
        elif key.startswith(("decoder_", "mask_token")) and not any(k.startswith("decoder_") for k in target):
            km.skip(key)  # pre-training decoder: not part of a classifier
    return km.finish(target)
