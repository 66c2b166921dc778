"""``maest linprobe``: train a probe on a frozen MAE-ST encoder. The probe is either MAE's linear
probe (BatchNorm without affine + linear, He et al. arXiv:2111.06377 §A.3) or an attentive probe (one
cross-attention pooling layer); see :mod:`maest.models.probe`. The training loop is fine-tuning's,
with only the probe's parameters in the optimizer."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from maest import finetune
from maest.finetune_config import FinetuneConfig


def run(cfg: FinetuneConfig, dataset: Dataset | None = None, val_dataset: Dataset | None = None) -> dict[str, Any]:
    """Probe ``cfg.init``'s encoder (``cfg.model.probe``: "linear" or "attentive")."""
    if cfg.model.probe == "none":
        raise ValueError("model.probe=none fine-tunes the whole model: use maest finetune, or set "
                         "model.probe=linear or attentive")
    if not cfg.init and cfg.train.resume is None:
        raise ValueError("a probe needs pre-trained weights: pass --init PRETRAIN_CHECKPOINT")
    return finetune.run(cfg, dataset, val_dataset)
