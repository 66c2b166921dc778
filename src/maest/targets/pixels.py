"""Pixel targets and the dispatch over target kinds."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from maest.targets.config import TargetConfig
from maest.targets.patchify import patchify


def target_frame_indices(num_frames: int, pred_t_dim: int, device=None) -> torch.Tensor:
    """Frames the decoder predicts: ``linspace(0, T-1, pred_t_dim).long()`` as in the reference,
    which truncates (T=16, 8 targets -> 0, 2, 4, ..., 12, 15)."""
    return torch.linspace(0, num_frames - 1, pred_t_dim, device=device).long()


def pixel_target(
    video: torch.Tensor, patch_size: int, t_pred_patch_size: int, frames: int, kind: str = "norm_pix",
    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
) -> torch.Tensor:
    """Pixel targets (B, L, u'*p*p*C), patch layout (u', row, col, channel).

    Args:
        video: (B, C, T, H, W) normalised input.
        patch_size, t_pred_patch_size, frames: the model's ``target_spec``.
        kind: "pixels", "norm_pix" (MAE-ST: whole-patch mean and unbiased variance, ``(var + 1e-6)**0.5``),
            "videomae_norm_pix" (VideoMAE: un-normalise with ``mean``/``std``, then per channel,
            ``std + 1e-6``) or "videomae_pixels" (un-normalised only, in [0, 1]).
    """
    idx = target_frame_indices(video.shape[2], frames, device=video.device)
    clip = video.index_select(2, idx)
    if kind in ("videomae_norm_pix", "videomae_pixels"):
        if mean is None or std is None:
            raise ValueError(f"{kind} targets need the input normalisation's mean and std")
        m = torch.tensor(mean, device=video.device, dtype=video.dtype).view(1, -1, 1, 1, 1)
        s = torch.tensor(std, device=video.device, dtype=video.dtype).view(1, -1, 1, 1, 1)
        clip = clip * s + m  # back to [0, 1], as V2's engine does
    target = patchify(clip, patch_size, t_pred_patch_size)
    if kind == "norm_pix":
        mu = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mu) / (var + 1.0e-6) ** 0.5
    elif kind == "videomae_norm_pix":
        B, L, K = target.shape
        C = video.shape[1]
        per_channel = target.view(B, L, K // C, C)  # the layout's channel is innermost
        mu = per_channel.mean(dim=-2, keepdim=True)
        sd = per_channel.var(dim=-2, keepdim=True).sqrt()
        target = ((per_channel - mu) / (sd + 1e-6)).view(B, L, K)
    elif kind not in ("pixels", "videomae_pixels"):
        raise ValueError(f"{kind!r} is not a pixel target")
    return target


def make_target(
    video: torch.Tensor, cfg: TargetConfig, spec: Sequence[int], mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> torch.Tensor:
    """The target (B, L, K) of ``cfg.kind`` for a model whose ``target_spec`` is ``spec``
    (patch_size, t_pred_patch_size, frames).

    Args:
        video: (B, C, T, H, W) normalised input, as the model sees it.
        mean, std: the input normalisation (needed by "videomae_norm_pix").
    """
    patch_size, t_pred, frames = spec
    if cfg.kind == "features":
        raise ValueError("feature targets come from the teacher, not the clip: pass the teacher's features "
                         "(maest.train.teacher.Teacher) as the target")
    if cfg.kind == "hog":
        from maest.targets.hog import hog_target

        return hog_target(video, patch_size, frames, cfg.hog_bins, cfg.hog_cell)
    return pixel_target(video, patch_size, t_pred, frames, cfg.kind, mean, std)
