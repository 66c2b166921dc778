"""Positional embeddings: learned separable space + time tables (MAE-ST default), a learned joint
table, fixed sin-cos tables (VideoMAE), and resizing of learned tables to a new grid.

Token order is t-major: token index = t_index * (h*w) + spatial_index, as in the reference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def separable_table(spatial: torch.Tensor, temporal: torch.Tensor) -> torch.Tensor:
    """Full table from separable parts.

    Args:
        spatial: (1, h*w, D).
        temporal: (1, t, D).

    Returns:
        (1, t*h*w, D): spatial repeated over time plus temporal repeated over space.
    """
    t, hw = temporal.shape[1], spatial.shape[1]
    return spatial.repeat(1, t, 1) + torch.repeat_interleave(temporal, hw, dim=1)


def sincos_1d_table(num_positions: int, dim: int) -> torch.Tensor:
    """VideoMAE's fixed 1-D sinusoid table over flattened tokens: (1, num_positions, dim)."""
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.where(j.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float().unsqueeze(0)


def resize_spatial(table: torch.Tensor, new_grid: int) -> torch.Tensor:
    """Bicubically resize a (1, g*g, D) spatial table to (1, new_grid**2, D)."""
    n, dim = table.shape[1], table.shape[2]
    old = int(math.isqrt(n))
    if old * old != n:
        raise ValueError(f"spatial table has {n} positions, which is not a square grid")
    if old == new_grid:
        return table
    grid = table.reshape(1, old, old, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, dim).to(table.dtype)


def resize_temporal(table: torch.Tensor, new_t: int) -> torch.Tensor:
    """Linearly resize a (1, t, D) temporal table to (1, new_t, D)."""
    if table.shape[1] == new_t:
        return table
    x = F.interpolate(table.float().transpose(1, 2), size=new_t, mode="linear", align_corners=False)
    return x.transpose(1, 2).to(table.dtype)
