"""Temporal sampling of clip frame indices (the reference's ``decoder.py`` scheme, arXiv:2205.09113).

A clip of ``num_frames`` frames at ``sampling_rate`` spans ``sampling_rate * num_frames / 30 * fps``
source frames (the rate is defined at 30 fps); its indices are ``linspace(start, start+span-1, T)``
clamped to the video and truncated to integers.
"""

from __future__ import annotations

import torch


def clip_span(num_frames: int, sampling_rate: int, fps: float, target_fps: float = 30.0) -> float:
    """Source frames covered by one clip."""
    return sampling_rate * num_frames / target_fps * (fps if fps > 0 else target_fps)


def clip_indices(start: float, span: float, num_frames: int, video_frames: int) -> torch.Tensor:
    """(num_frames,) int64 frame indices of a clip starting at ``start``."""
    idx = torch.linspace(start, start + max(span - 1, 0), num_frames)
    return idx.clamp(0, video_frames - 1).long()


def train_clips(
    video_frames: int, num_frames: int, sampling_rate: int, fps: float, repeat: int,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """``repeat`` clips, each from an independent uniform random start (repeated sampling)."""
    span = clip_span(num_frames, sampling_rate, fps)
    delta = max(video_frames - span, 0.0)
    starts = torch.rand(repeat, generator=generator, dtype=torch.float64) * delta
    return [clip_indices(float(s), span, num_frames, video_frames) for s in starts]


def uniform_clips(
    video_frames: int, num_frames: int, sampling_rate: int, fps: float, num_clips: int
) -> list[torch.Tensor]:
    """``num_clips`` clips with starts spread evenly from the first to the last possible one;
    a single clip is centred (validation)."""
    span = clip_span(num_frames, sampling_rate, fps)
    delta = max(video_frames - span, 0.0)
    if num_clips == 1:
        return [clip_indices(delta / 2, span, num_frames, video_frames)]
    return [clip_indices(delta * i / (num_clips - 1), span, num_frames, video_frames) for i in range(num_clips)]
