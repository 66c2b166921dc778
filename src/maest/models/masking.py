"""Patchify/unpatchify and masking (MAE-ST §3, arXiv:2205.09113).

Masking is driven by a noise tensor: tokens are sorted by noise (ascending) and the first
``len_keep`` are kept. Callers may inject the noise, which makes masking reproducible and lets the
official model's masks be replayed exactly. Structured strategies (tube, frame, space-time "random")
are expressed as noise with a particular ordering, so one code path masks them all.

Dual masking (VideoMAE V2, Wang et al., CVPR 2023, arXiv:2303.16727): besides the encoder mask, a
*decoder* mask chooses which tokens the decoder reconstructs. It is also given as noise: the decoder
processes the ``decoder_num_keep`` tokens with the smallest decoder noise. Token counts follow the code
each strategy comes from: MAE-ST's random masking keeps ``int(L * (1 - r))``; VideoMAE's tube generator
masks ``int(r * h * w)`` tokens per frame; V2's running cell masks ``int(4 * r)`` of every 2x2 cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

# the paper's Table 2a names: "space-only" masking is tube masking, "time-only" is frame masking;
# "run_cell" is VideoMAE V2's command-line name
ALIASES = {"space": "tube", "time": "frame", "agnostic": "random", "run_cell": "running_cell"}
STRATEGIES = ("random", "tube", "frame", "running_cell", "motion", *ALIASES)
# motion-guided masking (maest.models.motion_masking): MGMAE's warped base mask or MGM's motion magnitude
MOTION_RULES = ("warp", "magnitude")
DECODER_STRATEGIES = ("none", "running_cell", "random", "run_cell")
CELL = 4  # V2's running cell: 2x2 tokens


def canonical_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown mask strategy {strategy!r}; choose one of {STRATEGIES}")
    return ALIASES.get(strategy, strategy)


@dataclass
class MaskConfig:
    """Which tokens the encoder sees and which the decoder reconstructs (``model.mask.*``).

    Attributes:
        strategy: encoder mask: "random" (spacetime-agnostic, MAE-ST), "tube" (VideoMAE), "frame",
            "running_cell" or "motion" (from the clip's motion field, ``data.motion``; see
            :mod:`maest.models.motion_masking`).
        decoder: decoder mask: "none" (the decoder runs on every token, MAE-ST), "running_cell"
            (VideoMAE V2) or "random".
        decoder_ratio: fraction of tokens the decoder skips (V2: 0.5); 0 with ``decoder="none"``.
        ratio: fraction of tokens the encoder does not see (the paper: 0.9).
        motion_rule: with ``strategy="motion"``: "warp" (MGMAE: a random base-frame mask warped along the
            motion) or "magnitude" (MGM-style, our own rule: the fastest-moving tokens are masked; MGM's
            published construction could not be found, see :mod:`maest.models.motion_masking`).
    """

    strategy: str = "random"
    decoder: str = "none"
    decoder_ratio: float = 0.0
    ratio: float = 0.9  # positional construction of earlier versions keeps its meaning
    motion_rule: str = "warp"

    def validate(self, grid: tuple[int, int, int] | None = None) -> MaskConfig:
        """One-line errors for unknown strategies and ratios a strategy cannot express on ``grid``."""
        if self.strategy not in STRATEGIES:
            raise ValueError(f"model.mask.strategy={self.strategy!r} is not one of {STRATEGIES}")
        if not 0.0 < self.ratio < 1.0:
            raise ValueError(f"model.mask.ratio={self.ratio} must be strictly between 0 and 1 (paper: 0.9)")
        if self.motion_rule not in MOTION_RULES:
            raise ValueError(f"model.mask.motion_rule={self.motion_rule!r} is not one of {MOTION_RULES}")
        if grid is not None:
            if canonical_strategy(self.strategy) == "running_cell":
                _check_even(grid)
            num_keep(self.ratio, grid, self.strategy)  # the strategy can express the ratio on this grid
        if self.decoder not in DECODER_STRATEGIES:
            raise ValueError(f"model.mask.decoder={self.decoder!r} is not one of {DECODER_STRATEGIES}")
        if self.decoder == "none":
            if self.decoder_ratio:
                raise ValueError(f"model.mask.decoder_ratio={self.decoder_ratio} needs a decoder mask: set "
                                 "model.mask.decoder=running_cell (VideoMAE V2) or random, or the ratio to 0")
            return self
        if not 0.0 < self.decoder_ratio < 1.0:
            raise ValueError(f"model.mask.decoder_ratio={self.decoder_ratio} must be strictly between 0 and 1 "
                             "(VideoMAE V2: 0.5)")
        if grid is not None:
            decoder_num_keep(self.decoder_ratio, grid, self.decoder)
        return self


def num_keep(ratio: float, grid: tuple[int, int, int], strategy: str = "random") -> int:
    """Number of visible tokens. ``random`` floors like the reference (``int(L * (1 - r))``);
    ``tube`` keeps whole tubes and floors the *masked* count per frame as VideoMAE's generator does
    (0.9 on 14x14 keeps 20 per frame, on 7x7 keeps 5); ``frame`` keeps whole frames;
    ``running_cell`` masks ``int(4 r)`` of each 2x2 cell; ``motion`` keeps ``int(h * w * (1 - r))`` per
    temporal slice (MGMAE's count)."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"mask_ratio={ratio} must be strictly between 0 and 1 (e.g. 0.9 as in the paper)")
    t, h, w = grid
    strategy = canonical_strategy(strategy)
    if strategy == "random":
        keep = int(t * h * w * (1 - ratio))
    elif strategy == "tube":
        keep = (h * w - int(ratio * h * w)) * t
    elif strategy == "running_cell":
        keep = t * h * w - t * h * w // CELL * cell_masks(ratio, grid, "mask_ratio")
    elif strategy == "frame":
        keep = int(t * (1 - ratio)) * h * w
    elif strategy == "motion":
        keep = int(h * w * (1 - ratio)) * t
    else:
        raise ValueError(f"unknown mask strategy {strategy!r}; choose one of {STRATEGIES}")
    if keep < 1:
        raise ValueError(
            f"mask_ratio={ratio} with strategy {strategy!r} leaves no visible token on a {t}x{h}x{w} grid; "
            "lower the mask ratio"
        )
    if keep >= t * h * w:
        # checked here, once, so the loss never has to read the mask count back from the device
        raise ValueError(f"mask_ratio={ratio} with strategy {strategy!r} removes no token of a {t}x{h}x{w} grid, "
                         "so the MAE loss is undefined (0/0); raise the mask ratio")
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
    time step, ordered so whole frames are kept together. ``motion``: the random part of motion masking,
    i.i.d. uniform (:func:`maest.models.motion_masking.motion_noise` turns it into the clip's masks; alone,
    it masks like ``random`` with the motion count).
    """
    t, h, w = grid
    strategy = canonical_strategy(strategy)
    if strategy in ("random", "motion"):
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
    if strategy == "running_cell":
        return running_cell_noise(batch, grid, generator, device)
    raise ValueError(f"unknown mask strategy {strategy!r}; choose one of {STRATEGIES}")


def cell_masks(ratio: float, grid: tuple[int, int, int], name: str = "ratio") -> int:
    """Tokens masked per 2x2 running cell, ``int(4 * ratio)`` as V2's generator; ratios the cell
    cannot express exactly (other than 0.25, 0.5, 0.75) and odd grids are refused."""
    n = int(CELL * ratio)
    if not 0 < n < CELL or n != CELL * ratio:
        raise ValueError(f"{name}={ratio} cannot be expressed by running-cell masking, which masks 1, 2 or 3 "
                         "tokens of each 2x2 cell: use 0.25, 0.5 or 0.75")
    _check_even(grid)
    return n


def _check_even(grid: tuple[int, int, int]) -> None:
    if grid[1] % 2 or grid[2] % 2:
        raise ValueError(f"running-cell masking tiles 2x2 cells and needs an even token grid; "
                         f"{grid[1]}x{grid[2]} is not")


def running_cell_phase(grid: tuple[int, int, int], offset: torch.Tensor) -> torch.Tensor:
    """Each token's place (B, t*h*w) in V2's running cell, in [0, 4), for pointer offsets (B,).

    A 2x2 cell reads the queue [1]*n + [0]*(4-n) from a pointer that advances by one each frame (and
    once before the first), so the masked positions run through the cell over time; the cell tiles
    the frame. A token is masked when its phase is below n. V2 draws the offset uniformly per clip.
    """
    t, h, w = grid
    dev = offset.device
    cell = (torch.arange(h, device=dev) % 2).view(h, 1) * 2 + (torch.arange(w, device=dev) % 2).view(1, w)
    frame = torch.arange(1, t + 1, device=dev).view(1, t, 1, 1)
    phase = (cell.view(1, 1, h, w) + frame + offset.view(-1, 1, 1, 1)) % CELL
    return phase.reshape(offset.shape[0], t * h * w)


def running_cell_mask(grid: tuple[int, int, int], ratio: float, offset: torch.Tensor) -> torch.Tensor:
    """V2's running-cell masks (B, t*h*w), 1 = masked, for per-sample pointer offsets (B,) in [0, 4)."""
    return (running_cell_phase(grid, offset) < cell_masks(ratio, grid)).float()


def mask_to_noise(mask: torch.Tensor) -> torch.Tensor:
    """Noise (B, L) whose ascending order keeps exactly the zeros of a given mask (1 = removed), in token
    order: replays masks made elsewhere (e.g. VideoMAE's generators) through the noise interface."""
    L = mask.shape[1]
    order = torch.arange(L, device=mask.device, dtype=torch.float32) / (2 * L)
    return mask.float() + order


def running_cell_noise(
    batch: int, grid: tuple[int, int, int], generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Noise (B, L) realising running-cell masks at any expressible ratio, with a random pointer offset
    per clip: ascending order takes the tokens of phase 3, then 2, then 1 (masking ``n`` of 4 keeps the
    phases >= n), each phase being a quarter of the tokens."""
    _check_even(grid)
    offset = torch.randint(CELL, (batch,), generator=generator, device=device)
    return mask_to_noise((CELL - 1 - running_cell_phase(grid, offset)).float())


def decoder_num_keep(ratio: float, grid: tuple[int, int, int], strategy: str) -> int:
    """Tokens the decoder reconstructs: all but ``int(4 r)`` of each cell (running cell, V2) or all
    but ``int(r * L)`` (random)."""
    if strategy not in DECODER_STRATEGIES:
        raise ValueError(f"unknown decoder mask strategy {strategy!r}; choose one of {DECODER_STRATEGIES}")
    t, h, w = grid
    L = t * h * w
    if strategy == "none":
        return L
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"decoder mask ratio {ratio} must be strictly between 0 and 1 (VideoMAE V2: 0.5)")
    if strategy in ("running_cell", "run_cell"):
        return L - L // CELL * cell_masks(ratio, grid, "model.mask.decoder_ratio")
    keep = L - int(ratio * L)
    if keep < 1:
        raise ValueError(f"decoder mask ratio {ratio} leaves the decoder no token on a {t}x{h}x{w} grid")
    return keep


def decoder_mask_noise(
    batch: int, grid: tuple[int, int, int], strategy: str, generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor | None:
    """Decoder noise (B, L): the decoder reconstructs the ``decoder_num_keep`` tokens with the smallest
    values. None for ``strategy="none"``."""
    if strategy not in DECODER_STRATEGIES:
        raise ValueError(f"unknown decoder mask strategy {strategy!r}; choose one of {DECODER_STRATEGIES}")
    if strategy == "none":
        return None
    if strategy in ("running_cell", "run_cell"):
        return running_cell_noise(batch, grid, generator, device)
    t, h, w = grid
    return torch.rand(batch, t * h * w, generator=generator, device=device)


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
