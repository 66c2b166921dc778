"""Tokens as pixel patches: (B, C, T, H, W) <-> (B, L, u*p*p*C), the layout targets and predictions
share (the reference's ``"nctuhpwq->nthwupqc"``)."""

from __future__ import annotations

import torch


def patchify(video: torch.Tensor, patch_size: int, t_patch_size: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, t*h*w, u*p*p*C), patch laid out as (u, row, col, channel).

    The layout matches the reference's ``"nctuhpwq->nthwupqc"`` so predictions are comparable.
    """
    B, C, T, H, W = video.shape
    p, u = patch_size, t_patch_size
    if H % p or W % p or T % u:
        raise ValueError(f"video {T}x{H}x{W} does not tile into {u}x{p}x{p} patches")
    t, h, w = T // u, H // p, W // p
    x = video.reshape(B, C, t, u, h, p, w, p)
    x = torch.einsum("nctuhpwq->nthwupqc", x)
    return x.reshape(B, t * h * w, u * p * p * C)


def unpatchify(
    x: torch.Tensor, patch_size: int, t_patch_size: int, grid: tuple[int, int, int], channels: int = 3
) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, t*h*w, u*p*p*C) -> (B, C, t*u, h*p, w*p)."""
    B = x.shape[0]
    t, h, w = grid
    p, u = patch_size, t_patch_size
    x = x.reshape(B, t, h, w, u, p, p, channels)
    x = torch.einsum("nthwupqc->nctuhpwq", x)
    return x.reshape(B, channels, t * u, h * p, w * p)
