"""The motion-masked step for ``maest bench --motion-rules``: the host-side mask work of
``model.mask.strategy=motion`` (a motion field turned into masking noise by
:func:`maest.models.motion_masking.motion_noise`) timed inside the training step, on a synthetic field.

The field is a smooth pan (every pixel displaced by the same few pixels per frame, a different direction
per clip) at the data pipeline's quarter resolution, so the step does the same work as on real codec
motion vectors; the pixels themselves are random clips, as in the rest of the bench.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from maest.models.motion_masking import motion_noise

FIELD_STRIDE = 4  # pixels per field cell: the data pipeline's quarter resolution


def synthetic_motion(batch: int, frames: int, size: int, device: str) -> torch.Tensor:
    """(B, T, 2, size/4, size/4) backward displacements: a pan of 3 pixels per frame, direction per clip."""
    angles = torch.arange(batch, dtype=torch.float32) * (2 * math.pi / max(batch, 1))
    step = 3.0 * torch.stack([angles.cos(), angles.sin()], dim=1)  # (B, 2)
    cells = size // FIELD_STRIDE
    return step[:, None, :, None, None].expand(batch, frames, 2, cells, cells).contiguous().to(device)


def motion_noise_fn(model: torch.nn.Module, batch: int, rule: str, device: str) -> Callable[[], torch.Tensor]:
    """A callable giving (B, L) motion-guided masking noise for ``model``'s grid, fresh random part per call,
    as the trainer's step computes it."""
    pe, cfg = model.patch_embed, model.model_cfg
    field = synthetic_motion(batch, pe.num_frames, pe.img_size, device)
    has = torch.ones(batch, dtype=torch.bool)

    def noise() -> torch.Tensor:
        base = model.make_noise(batch, device=device)
        return motion_noise(base, field, has, model.grid, cfg.encoder.patch_size, cfg.mask.ratio, rule)

    return noise
