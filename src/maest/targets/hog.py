"""MaskFeat's HOG target (Wei et al., "Masked Feature Prediction for Self-Supervised Visual
Pre-Training", CVPR 2022), matching SlowFast's ``HOGLayerC`` and ``MaskMViT._get_hog_label_3d``:

1. Sobel gradients per colour channel, after one pixel of reflection padding;
2. each pixel votes its gradient magnitude into one of ``bins`` unsigned orientation bins
   (``floor(atan2(gx, gy) / pi * bins) mod bins``);
3. votes are summed over ``cell x cell`` pixel cells, and each cell's histogram is L2-normalised
   per channel;
4. a token's target is its patch's cells on the first frame of its tube, laid out as
   (channel, bin, cell row, cell column).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_SOBEL = ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0))


def hog_histograms(images: torch.Tensor, bins: int = 9, cell: int = 8) -> torch.Tensor:
    """(N, C, H, W) images -> (N, C, bins, H // cell, W // cell) L2-normalised histograms (fp32)."""
    N, C, H, W = images.shape
    if H % cell or W % cell:
        raise ValueError(f"a {H}x{W} image does not tile into {cell}x{cell} HOG cells")
    with torch.autocast(images.device.type, enabled=False):
        x = F.pad(images.float(), (1, 1, 1, 1), mode="reflect")
        kx = torch.tensor(_SOBEL, device=x.device).expand(C, 1, 3, 3)
        gx = F.conv2d(x, kx, groups=C)  # (N, C, H, W): left minus right, rows weighted 1-2-1
        gy = F.conv2d(x, kx.transpose(2, 3), groups=C)  # top minus bottom
        magnitude = torch.stack([gx, gy], dim=-1).norm(dim=-1)
        # unsigned orientation: the half-turn [-pi, pi) maps to [-bins, bins), folded by the modulo
        which = torch.floor(torch.atan2(gx, gy) / math.pi * bins).long() % bins
        votes = torch.zeros(N, C, bins, H, W, device=x.device)
        votes.scatter_add_(2, which.unsqueeze(2), magnitude.unsqueeze(2))
        hist = votes.view(N, C, bins, H // cell, cell, W // cell, cell).sum(dim=(4, 6))
        return F.normalize(hist, p=2, dim=2)


def hog_target(video: torch.Tensor, patch_size: int, frames: int, bins: int = 9, cell: int = 8) -> torch.Tensor:
    """Per-token HOG targets (B, frames*h*w, C*bins*(p/cell)^2) from the first frame of each tube.

    Args:
        video: (B, C, T, H, W), the model's (normalised) input, as SlowFast feeds it.
        patch_size: spatial patch p (a multiple of ``cell``).
        frames: target frames, one per tube: frames 0, u, 2u, ... with u = T // frames.
    """
    B, C, T, H, W = video.shape
    if T % frames or patch_size % cell:
        raise ValueError(f"HOG targets need T={T} divisible by {frames} target frames and patch {patch_size} "
                         f"divisible by the {cell}-px cell")
    step = T // frames
    first = video[:, :, ::step].transpose(1, 2).reshape(B * frames, C, H, W)
    hist = hog_histograms(first, bins, cell)  # (B*t, C, bins, H/cell, W/cell)
    k, h, w = patch_size // cell, H // patch_size, W // patch_size
    hist = hist.reshape(B, frames, C * bins, h, k, w, k).permute(0, 1, 3, 5, 2, 4, 6)
    return hist.reshape(B, frames * h * w, C * bins * k * k)
