"""Learning-rate schedule: linear warmup then half-cycle cosine to ``min_lr``, evaluated per
iteration on a fractional epoch, as the reference's ``util/lr_sched.py`` does."""

from __future__ import annotations

import math


def lr_at(epoch: float, base_lr: float, min_lr: float, warmup_epochs: float, total_epochs: float) -> float:
    """Learning rate at fractional ``epoch`` (e.g. step / steps_per_epoch)."""
    if epoch < warmup_epochs:
        return base_lr * epoch / warmup_epochs
    span = max(total_epochs - warmup_epochs, 1e-12)
    progress = min((epoch - warmup_epochs) / span, 1.0)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def scaled_lr(blr: float, effective_batch: int) -> float:
    """The MAE linear scaling rule: lr = blr * effective_batch / 256."""
    return blr * effective_batch / 256
