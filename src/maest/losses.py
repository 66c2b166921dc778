"""Losses. The MAE-ST reconstruction loss lives here, outside the model (arXiv:2205.09113 §3):
mean squared error on per-patch normalised pixels, over removed tokens only.
"""

from __future__ import annotations

import torch

from maest.models.masking import patchify


def target_frame_indices(num_frames: int, pred_t_dim: int, device=None) -> torch.Tensor:
    """Frames the decoder predicts: ``linspace(0, T-1, pred_t_dim).long()`` as in the reference,
    which truncates (T=16, 8 targets -> 0, 2, 4, ..., 12, 15)."""
    return torch.linspace(0, num_frames - 1, pred_t_dim, device=device).long()


def mae_target(
    video: torch.Tensor, patch_size: int, t_patch_size: int, frames: int, norm_pix: bool = True
) -> torch.Tensor:
    """Pixel targets (B, L, u*p*p*C) for the decoder's predictions.

    Args:
        video: (B, C, T, H, W) normalised input.
        patch_size, t_patch_size, frames: the model's ``target_spec``.
        norm_pix: normalise each patch by its own mean and unbiased variance (+1e-6), the paper's
            best target (Table 2b).
    """
    idx = target_frame_indices(video.shape[2], frames, device=video.device)
    target = patchify(video.index_select(2, idx), patch_size, t_patch_size)
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
    return target


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over removed tokens of the per-token MSE.

    Args:
        pred, target: (B, L, K).
        mask: (B, L), 1 = removed. Averaged over all removed tokens of the batch (not per sample), as
            the reference does.
    """
    if mask.sum() == 0:
        raise ValueError("the mask removes no token, so the MAE loss is undefined (0/0); use mask_ratio > 0")
    per_token = ((pred.float() - target.float()) ** 2).mean(dim=-1)
    return (per_token * mask).sum() / mask.sum()


def soft_target_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets (mixup/cutmix, smoothing): mean over the batch of
    ``-sum_k target_k log softmax(logits)_k``.

    Args:
        logits: (B, K).
        target: (B, K), rows summing to 1.
    """
    return torch.sum(-target * torch.log_softmax(logits.float(), dim=-1), dim=-1).mean()


def classification_loss(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Soft-target CE for (B, K) targets, else label-smoothed CE for (B,) class indices (fp32 scalar)."""
    if target.ndim == 2:
        return soft_target_cross_entropy(logits, target)
    return torch.nn.functional.cross_entropy(logits.float(), target, label_smoothing=smoothing)
