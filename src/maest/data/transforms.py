"""Clip augmentations on tensors, each applied identically to every frame of a clip (no PIL round
trips). Frames come in as uint8 (T, C, H, W); clips leave normalised as float32 (C, T, H, W), or as uint8
with ``data.transfer=uint8`` (:func:`to_uint8`; normalised on the device, :mod:`maest.data.transfer`). Random
draws come from :func:`maest.data.rng.generator` (a loading thread's own, else torch's global generator).

Speed: crops are views, resizing stays in uint8 on the decoders' channels-last frames (torch's
vectorised uint8 bilinear kernel, several times faster than converting the full-size crop to float
first; values round to the nearest integer, within 1 of the float result), and :func:`normalize`
converts to float, permutes and normalises into a caller's buffer (the batch), so a clip is written
once.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from maest.data.rng import generator

MEAN = (0.45, 0.45, 0.45)
STD = (0.225, 0.225, 0.225)


def _uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand((), generator=generator()).item()


def rrc_box(height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
            tries: int = 10) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random resized crop: area fraction ~ U(scale), aspect log-uniform in
    ``ratio``; after ``tries`` misses, a centre crop clamped to the ratio range."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(tries):
        target = area * _uniform(*scale)
        aspect = math.exp(_uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (), generator=generator()).item())
            left = int(torch.randint(0, width - w + 1, (), generator=generator()).item())
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def resize(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (T, C, H, W) to ``size`` (align_corners=False, as the reference). uint8 on
    the CPU stays uint8 (rounded); anything else comes out float."""
    if not (frames.dtype == torch.uint8 and frames.device.type == "cpu"):
        frames = frames.float()
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    return F.interpolate(frames, size=size, mode="bilinear", align_corners=False)


def random_resized_crop(frames: torch.Tensor, size: int, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """One crop box for all frames, resized to ``size`` x ``size``: (T, C, H, W) -> (T, C, s, s), uint8
    for uint8 CPU frames (see :func:`resize`)."""
    return resized_crop(frames, rrc_box(frames.shape[-2], frames.shape[-1], scale, ratio), size)


def resized_crop(frames: torch.Tensor, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """The (top, left, h, w) ``box`` of (T, C, H, W) frames resized to ``size`` x ``size`` (see :func:`resize`)."""
    top, left, h, w = box
    return resize(frames[..., top:top + h, left:left + w], (size, size))


def flip_draw(p: float = 0.5) -> bool:
    """Whether to flip this clip (one draw, the pipeline's generator)."""
    return torch.rand((), generator=generator()).item() < p


def random_flip(frames: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    return frames.flip(-1) if flip_draw(p) else frames


def short_side_resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so the shorter side is ``size``, keeping the aspect ratio."""
    h, w = frames.shape[-2:]
    if h <= w:
        new = (size, max(size, int(round(w * size / h))))
    else:
        new = (max(size, int(round(h * size / w))), size)
    return resize(frames, new)


def uniform_crop(frames: torch.Tensor, size: int, position: int) -> torch.Tensor:
    """Crop ``size`` x ``size`` at position 0/1/2 = left/centre/right (top/centre/bottom if portrait)."""
    h, w = frames.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    if w >= h:
        left = [0, (w - size) // 2, w - size][position]
    else:
        top = [0, (h - size) // 2, h - size][position]
    return frames[..., top:top + size, left:left + size]


@functools.lru_cache(maxsize=32)
def _scaled_stats(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """255 mean and 255 std as (C, 1, 1, 1) float32 on ``device``, made once per device (on a GPU each
    ``torch.tensor`` would be a blocking host-to-device copy per clip)."""
    m = torch.tensor(mean, device=device).view(-1, 1, 1, 1) * 255
    s = torch.tensor(std, device=device).view(-1, 1, 1, 1) * 255
    return m, s


def normalize(frames: torch.Tensor, mean=MEAN, std=STD, out: torch.Tensor | None = None) -> torch.Tensor:
    """(T, C, H, W) in [0, 255], uint8 or float -> normalised float32 (C, T, H, W): ``(x - 255 mean) /
    (255 std)``, written into ``out`` (e.g. the clip's slot in the batch) when given."""
    m, s = _scaled_stats(tuple(mean), tuple(std), frames.device)
    src = frames.permute(1, 0, 2, 3)
    if out is None:
        out = torch.empty(src.shape, dtype=torch.float32, device=frames.device)
    out.copy_(src)  # the float conversion and the layout change in one pass
    return out.sub_(m).div_(s)


def random_erasing(clip: torch.Tensor, p: float = 0.25, area=(0.02, 1 / 3), aspect=(0.3, 1 / 0.3),
                   tries: int = 10) -> torch.Tensor:
    """Erase one random box with N(0, 1) noise ('pixel' mode), the same box in every frame.

    clip: normalised (C, T, H, W).
    """
    drawn = erase_draw(clip.shape, p, area, aspect, tries)
    if drawn is None:
        return clip
    (top, left, h, w), noise = drawn
    clip = clip.clone()
    clip[:, :, top:top + h, left:left + w] = noise
    return clip


def erase_draw(shape: torch.Size | tuple[int, ...], p: float = 0.25, area=(0.02, 1 / 3), aspect=(0.3, 1 / 0.3),
               tries: int = 10) -> tuple[tuple[int, int, int, int], torch.Tensor] | None:
    """The draws of :func:`random_erasing` for a (C, T, H, W) clip, in its order: the box (top, left, h, w)
    and its (C, T, h, w) noise in normalised units, or None (no box)."""
    if torch.rand((), generator=generator()).item() >= p:
        return None
    C, T, H, W = shape
    for _ in range(tries):
        target = H * W * _uniform(*area)
        ratio = math.exp(_uniform(math.log(aspect[0]), math.log(aspect[1])))
        h, w = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
        if h < H and w < W:
            top = int(torch.randint(0, H - h + 1, (), generator=generator()).item())
            left = int(torch.randint(0, W - w + 1, (), generator=generator()).item())
            return (top, left, h, w), torch.randn(C, T, h, w, generator=generator())
    return None


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Frames in [0, 255] as uint8: uint8 as they are; float rounded to the nearest grey level (at most 0.5
    from the float value; RandAugment's and the float resize's outputs lie in [0, 255], and the clamp only
    guards the edges)."""
    return frames if frames.dtype == torch.uint8 else frames.round().clamp_(0, 255).to(torch.uint8)
