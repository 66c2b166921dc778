"""``maest pretrain``: assemble data, model and optimizer from a config and run MAE-ST pre-training
with per-iteration lr, optional bf16 autocast, gradient clipping, atomic checkpoints and exact resume.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch.utils.data import Dataset

from maest import distributed as dist
from maest.config import PretrainConfig
from maest.data.jobs import pretrain_dataset
from maest.distributed import unwrap
from maest.mae_step import decoder_masking_noise, mae_loss, masking_noise
from maest.optim import build_adamw, param_groups_weight_decay
from maest.precision import autocast, resolve_precision
from maest.schedule import scaled_lr
from maest.trainer import effective_batch, train

log = logging.getLogger("maest")


def build_model(cfg: PretrainConfig) -> torch.nn.Module:
    model = cfg.model.build()
    model.grad_checkpointing = cfg.train.grad_checkpointing
    return model


def run(cfg: PretrainConfig, dataset: Dataset | None = None) -> dict[str, Any]:
    """Pre-train; returns a summary (final step, last loss, checkpoint path, skipped videos).

    Args:
        cfg: the run configuration (validated here).
        dataset: optional map-style dataset yielding ``{"video": (r, C, T, H, W), "skipped": [...]}``;
            built from ``cfg.data`` when None.
    """
    cfg.validate()
    info = dist.init(cfg.train.device)
    try:
        return _run(cfg, dataset, info)
    finally:
        dist.shutdown()


def _run(cfg: PretrainConfig, dataset: Dataset | None, info: dist.DistInfo) -> dict[str, Any]:
    t, o = cfg.train, cfg.optim
    torch.manual_seed(t.seed)
    model = build_model(cfg).to(info.device)
    if t.parallel == "fsdp":
        dist.shard_fsdp(model, info)  # before the optimizer: sharding swaps in DTensor parameters
    if dataset is None:
        dataset = pretrain_dataset(cfg.data, cfg.model.encoder)
    # the reference excludes repeated sampling from the pre-training batch used to scale the lr
    base_lr = o.lr if o.lr is not None else scaled_lr(o.blr, effective_batch(cfg, info))
    precision = resolve_precision(t.precision, info.device)
    optimizer = build_adamw(param_groups_weight_decay(model, o.weight_decay), base_lr, (o.beta1, o.beta2),
                            o.fused, info.device)

    def loss_fn(train_model: torch.nn.Module, batch: dict, step: int, accum_pos: int) -> torch.Tensor:
        video = batch["video"].to(info.device, non_blocking=True)
        core = unwrap(model)
        noise = masking_noise(core, batch["index"], t.seed, step).to(info.device)
        dnoise = decoder_masking_noise(core, batch["index"], t.seed, step)  # None without decoder masking
        with autocast(info.device, precision):
            return mae_loss(train_model, video, t.mask_ratio, noise, cfg.model.target,
                            None if dnoise is None else dnoise.to(info.device))

    return train(cfg, model, optimizer, dataset, info, loss_fn, base_lr=base_lr, precision=precision,
                 title=f"pretrain {cfg.model.name}")
