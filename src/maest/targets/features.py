"""Teacher-feature targets (masked distillation; MVD, Wang et al., CVPR 2023): the arithmetic that turns a
frozen teacher's token features into the student's per-token targets. The teacher itself (a checkpoint,
loaded and run once per batch) lives with the pre-training job, :mod:`maest.train.teacher`.

* a video teacher with the student's frames, tubelet, size and patch gives one vector per student token,
  in the same (t, h, w) order;
* an image teacher (``num_frames=1``, ``t_patch_size=1``) sees the first frame of each of the student's
  tubes, frame by frame, and its tokens are stacked in time: MVD's ``time_stride_loss``;
* ``feature_norm="layernorm"`` normalises each vector over its channels without affine parameters,
  eps 1e-6 (MVD's ``--norm_feature``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FEATURE_NORM_EPS = 1e-6


def tube_first_frames(video: torch.Tensor, t_patch_size: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B * T/u, C, 1, H, W): frames 0, u, 2u, ... as one-frame clips, clip-major."""
    B, C, T, H, W = video.shape
    frames = video[:, :, ::t_patch_size]
    return frames.transpose(1, 2).reshape(B * frames.shape[2], C, 1, H, W)


def stack_frame_tokens(tokens: torch.Tensor, batch: int) -> torch.Tensor:
    """(B * t, hw, D) per-frame tokens -> (B, t * hw, D), t-major: the student's token order."""
    n, hw, D = tokens.shape
    return tokens.reshape(batch, (n // batch) * hw, D)


def normalise_features(features: torch.Tensor, kind: str) -> torch.Tensor:
    """``kind`` "none" (unchanged) or "layernorm" (per vector over channels, no affine, eps 1e-6)."""
    if kind == "none":
        return features
    if kind == "layernorm":
        return F.layer_norm(features, features.shape[-1:], eps=FEATURE_NORM_EPS)
    raise ValueError(f"model.target.feature_norm={kind!r} is not one of ('none', 'layernorm')")
