"""Temporal sampling of clip frame indices (the reference's ``decoder.py`` scheme, arXiv:2205.09113).

A clip of ``num_frames`` frames at ``sampling_rate`` spans ``sampling_rate * num_frames / 30 * fps``
source frames (the rate is defined at 30 fps); its indices are ``linspace(start, start+span-1, T)``
clamped to the video and truncated to integers. Training draws an independent start per repeated
clip (MAE-ST §4 "repeated sampling"); testing spreads K starts evenly over the video.

All functions are pure: randomness comes only from the ``generator`` argument (a
``torch.Generator`` or a ``numpy.random.Generator``; None uses torch's global RNG).
"""

from __future__ import annotations

import numpy as np
import torch

Rng = torch.Generator | np.random.Generator | None


def clip_span(num_frames: int, sampling_rate: int, fps: float, target_fps: float = 30.0) -> float:
    """Source frames covered by one clip (``fps <= 0``, unknown, counts as ``target_fps``)."""
    return sampling_rate * num_frames / target_fps * (fps if fps > 0 else target_fps)


def clip_indices(start: float, span: float, num_frames: int, video_frames: int) -> torch.Tensor:
    """(num_frames,) int64 frame indices of a clip starting at ``start``."""
    idx = torch.linspace(start, start + max(span - 1, 0), num_frames)  # float32, as the reference
    return idx.clamp(0, video_frames - 1).long()


def uniform01(n: int, generator: Rng = None) -> list[float]:
    """``n`` draws from U[0, 1) with either kind of generator."""
    if isinstance(generator, np.random.Generator):
        return generator.random(n).tolist()
    return torch.rand(n, generator=generator, dtype=torch.float64).tolist()


def train_clips(
    video_frames: int, num_frames: int, sampling_rate: int, fps: float, repeat: int = 4,
    generator: Rng = None,
) -> list[torch.Tensor]:
    """``repeat`` clips, each from an independent uniform start in [0, max(N - span, 0)].

    Returns:
        ``repeat`` int64 tensors of shape (num_frames,), indices in [0, video_frames).
    """
    if video_frames < 1:
        raise ValueError(f"video_frames={video_frames} must be >= 1")
    span = clip_span(num_frames, sampling_rate, fps)
    delta = max(video_frames - span, 0.0)
    return [clip_indices(u * delta, span, num_frames, video_frames) for u in uniform01(repeat, generator)]


def uniform_clips(
    video_frames: int, num_frames: int, sampling_rate: int, fps: float, num_clips: int
) -> list[torch.Tensor]:
    """``num_clips`` clips with starts spread evenly from the first to the last possible one;
    a single clip is centred (validation).

    Returns:
        ``num_clips`` int64 tensors of shape (num_frames,).
    """
    if video_frames < 1:
        raise ValueError(f"video_frames={video_frames} must be >= 1")
    span = clip_span(num_frames, sampling_rate, fps)
    delta = max(video_frames - span, 0.0)
    if num_clips == 1:
        return [clip_indices(delta / 2, span, num_frames, video_frames)]
    return [clip_indices(delta * i / (num_clips - 1), span, num_frames, video_frames) for i in range(num_clips)]
