"""Patchify/unpatchify and masking (MAE-ST §3, arXiv:2205.09113).

Masking is driven by a noise tensor: tokens are sorted by noise (ascending) and the first
``len_keep`` are kept. Callers may inject the noise, which makes masking reproducible and lets the
official model's masks be replayed exactly. Structured strategies (tube, frame, space-time "random")
are expressed as noise with a particular ordering, so one code path masks them all.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

# the paper's Table 2a names: "space-only" masking is tube masking, "time-only" is frame masking
ALIASES = {"space": "tube", "time": "frame", "agnostic": "random"}
STRATEGIES = ("random", "tube", "frame", *ALIASES)


def canonical_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown mask strategy {strategy!r}; choose one of {STRATEGIES}")
    return ALIASES.get(strategy, strategy)


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


def num_keep(ratio: float, grid: tuple[int, int, int], strategy: str = "random") -> int:
    """Number of visible tokens. ``random`` floors like the reference (``int(L * (1 - r))``);
    ``tube`` keeps whole tubes and ``frame`` whole frames."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"mask_ratio={ratio} must be strictly between 0 and 1 (e.g. 0.9 as in the paper)")
    t, h, w = grid
    strategy = canonical_strategy(strategy)
    if strategy == "random":
        keep = int(t * h * w * (1 - ratio))
    elif strategy == "tube":
        keep = int(h * w * (1 - ratio)) * t
    elif strategy == "frame":
        keep = int(t * (1 - ratio)) * h * w
    else:
        raise ValueError(f"unknown mask strategy {strategy!r}; choose one of {STRATEGIES}")
    if keep < 1:
        raise ValueError(
            f"mask_ratio={ratio} with strategy {strategy!r} leaves no visible token on a {t}x{h}x{w} grid; "
            "lower the mask ratio"
        )
    return keep


def mask_noise(
    batch: int,
    grid: tuple[int, int, int],
    strategy: str = "random",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Noise (B, t*h*w) whose ascending order realises a masking strategy.

    ``random``: i.i.d. uniform (spacetime-agnostic, the MAE-ST default). ``tube``: one draw per spatial
    position shared over time, ordered so whole tubes are kept together. ``frame``: one draw per
    time step, ordered so whole frames are kept together.
    """
    t, h, w = grid
    strategy = canonical_strategy(strategy)
    if strategy == "random":
        return torch.rand(batch, t * h * w, generator=generator, device=device)
    if strategy == "tube":
        rank = torch.rand(batch, h * w, generator=generator, device=device).argsort(1).argsort(1).float()
        # rank + t/t_grid stays below rank + 1, so sorting groups a tube's tokens together
        tt = torch.arange(t, device=rank.device).float().view(1, t, 1) / t
        return (rank.unsqueeze(1) + tt).reshape(batch, -1)
    if strategy == "frame":
        rank = torch.rand(batch, t, generator=generator, device=device).argsort(1).argsort(1).float()
        ss = torch.arange(h * w, device=rank.device).float().view(1, 1, -1) / (h * w)
        return (rank.unsqueeze(2) + ss).reshape(batch, -1)
    raise ValueError(f"unknown mask strategy {strategy!r}; choose one of {STRATEGIES}")


class Masking(NamedTuple):
    """Result of :func:`random_masking`.

    Attributes:
        visible: (B, len_keep, D) kept tokens in shuffled order.
        mask: (B, L) with 1 = removed, 0 = visible, in original token order.
        ids_restore: (B, L) permutation that un-shuffles [visible, masked] back to token order.
        ids_keep: (B, len_keep) original indices of the kept tokens.
    """

    visible: torch.Tensor
    mask: torch.Tensor
    ids_restore: torch.Tensor
    ids_keep: torch.Tensor


class MaskIndices(NamedTuple):
    """Token bookkeeping of one masking draw (see :func:`mask_indices`)."""

    mask: torch.Tensor
    ids_restore: torch.Tensor
    ids_keep: torch.Tensor


def mask_indices(noise: torch.Tensor, len_keep: int, dtype: torch.dtype = torch.float32) -> MaskIndices:
    """Which tokens a noise draw keeps, without touching the tokens themselves.

    Args:
        noise: (B, L); ascending order decides: small is keep, large is remove.
        len_keep: number of tokens to keep.
        dtype: dtype of the returned mask.

    Returns:
        mask (B, L) with 1 = removed in token order, ids_restore (B, L) that un-shuffles
        [kept, removed] back to token order, ids_keep (B, len_keep) the kept tokens' indices.
    """
    B, L = noise.shape
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(B, L, device=noise.device, dtype=dtype)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return MaskIndices(mask, ids_restore, ids_shuffle[:, :len_keep])


def random_masking(x: torch.Tensor, len_keep: int, noise: torch.Tensor) -> Masking:
    """Keep the ``len_keep`` tokens with the smallest noise.

    Args:
        x: (B, L, D) tokens.
        len_keep: number of tokens to keep.
        noise: (B, L); ascending order decides: small is keep, large is remove.
    """
    B, L, D = x.shape
    if noise.shape != (B, L):
        raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {(B, L)}")
    idx = mask_indices(noise, len_keep, x.dtype)
    visible = torch.gather(x, 1, idx.ids_keep.unsqueeze(-1).expand(-1, -1, D))
    return Masking(visible, idx.mask, idx.ids_restore, idx.ids_keep)
