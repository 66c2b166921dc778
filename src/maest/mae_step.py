"""One MAE pre-training micro-step: per-clip masking noise keyed by (seed, step, video, clip), and the
reconstruction loss of the (possibly wrapped) model against targets computed outside it."""

from __future__ import annotations

import torch
from torch import nn

from maest.data.loader import mix_seed
from maest.distributed import unwrap
from maest.losses import mae_target, reconstruction_loss


def masking_noise(model: nn.Module, video_index: torch.Tensor, seed: int, step: int) -> torch.Tensor:
    """Masking noise (B, L) for a batch of clips, each row a pure function of (seed, step, video,
    clip of that video). A resumed run masks exactly as an uninterrupted one without saving RNG
    state, and the masks do not depend on how the global batch is split over processes.

    Args:
        video_index: (B,) dataset index of each clip's video; repeated clips of a video share it and are
            told apart by their order in the batch.
    """
    seen: dict[int, int] = {}
    rows = []
    for v in video_index.tolist():
        clip = seen.get(v, 0)
        seen[v] = clip + 1
        g = torch.Generator().manual_seed(mix_seed(seed, step, v, clip))
        rows.append(model.make_noise(1, generator=g))
    return torch.cat(rows)


def mae_loss(
    model: nn.Module, video: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None, norm_pix: bool
) -> torch.Tensor:
    """Forward the (possibly wrapped) MAE and return the reconstruction loss (fp32 scalar)."""
    core = unwrap(model)
    out = model(video, mask_ratio, noise)
    target = mae_target(video, *core.target_spec, norm_pix=norm_pix)
    return reconstruction_loss(out.pred, target, out.mask)
