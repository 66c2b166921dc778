"""Losses, outside the model (arXiv:2205.09113 §3): MAE-ST's reconstruction loss (mean squared error
over removed tokens, against a target of :mod:`maest.targets`; or MVD's smooth L1 against a teacher's
features) and the classification losses of fine-tuning (soft-target cross-entropy for mixup / cutmix,
label smoothing)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reconstruction_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, pred_ids: torch.Tensor | None = None,
    loss: str = "mse",
) -> torch.Tensor:
    """Mean over removed tokens of the per-token MSE (or smooth L1).

    Args:
        pred: (B, L, K), or (B, N, K) for the N tokens listed in ``pred_ids`` (decoder masking).
        target: (B, L, K).
        mask: (B, L), 1 = removed. Averaged over all removed tokens of the batch (not per sample), as
            the reference does.
        pred_ids: (B, N) token indices of ``pred``'s rows when the decoder reconstructed only those
            (VideoMAE V2): the loss then averages over tokens both removed and decoded, as V2 does.
        loss: "mse", or "smooth_l1" (beta 1; MVD's distillation loss, ``nn.SmoothL1Loss`` over the removed
            tokens' elements).
    """
    if pred_ids is not None:
        target = torch.gather(target, 1, pred_ids.unsqueeze(-1).expand(-1, -1, target.shape[-1]))
        mask = torch.gather(mask, 1, pred_ids)
    # no host read of the mask count here (a GPU sync per step): masking removes at least one token by
    # construction (num_keep), and a batch whose decoded tokens are all visible gives a NaN loss, which
    # the loop's finiteness check reports
    if loss == "smooth_l1":
        per_token = F.smooth_l1_loss(pred.float(), target.float(), reduction="none", beta=1.0).mean(dim=-1)
    elif loss == "mse":
        per_token = ((pred.float() - target.float()) ** 2).mean(dim=-1)
    else:
        raise ValueError(f"model.target.loss={loss!r} is not one of ('mse', 'smooth_l1')")
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
