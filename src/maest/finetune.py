"""``maest finetune`` / ``maest linprobe``: train a video ViT classifier from MAE-ST weights (or from
scratch) with layer-wise lr decay, mixup/cutmix + label smoothing, RandAugment, repeated sampling,
drop path, per-iteration warmup + cosine lr, optional bf16, atomic checkpoints, exact resume and a
validation pass after every epoch (arXiv:2205.09113 §4; the reference's ``main_finetune.py``).

Exact resume: augmentation is seeded per item (:class:`~maest.engine.SeededItems`), the mixup draw
and the global RNG used by dropout / drop path are re-seeded from (seed, step, rank, micro-batch).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from maest import checkpoint as ckpt
from maest import distributed as dist
from maest.config import save_json
from maest.data.loader import ShardedSampler, SkipTally, build_loader, mix_seed
from maest.engine import SeededItems, autocast, resolve_precision
from maest.evaluate import predict_views, summarize
from maest.finetune_config import FinetuneConfig
from maest.losses import classification_loss
from maest.mixup import Mixup
from maest.models import create_model
from maest.models.probe import ProbedEncoder
from maest.models.vit import load_pretrained
from maest.optim import build_adamw, param_groups_layer_decay
from maest.pretrain import _progress, _report_skipped, _save
from maest.schedule import lr_at, scaled_lr
from maest.tracking import MetricsLogger

log = logging.getLogger("maest")


def build_classifier(cfg: FinetuneConfig, init: bool = True) -> nn.Module:
    """The classifier (or probed encoder) of ``cfg``, with ``cfg.init`` weights loaded when ``init``."""
    m = cfg.model
    model = create_model(m.name, **m.overrides())
    model.grad_checkpointing = m.grad_checkpointing
    if init and cfg.init:
        report = load_pretrained(model, ckpt.model_state(ckpt.load_checkpoint(cfg.init)))
        log.info("initialised from %s (dropped %d pre-training keys%s)", cfg.init, len(report["dropped"]),
                 f"; resized {', '.join(report['resized'])}" if report["resized"] else "")
    if m.probe != "none":
        model = ProbedEncoder(model, m.probe, m.num_classes)
    return model


def build_dataset(cfg: FinetuneConfig, model: nn.Module, mode: str) -> Dataset:
    """Clip dataset of ``cfg.data`` in ``mode`` ("finetune": the training source; "val"/"test":
    ``cfg.data.val_source``) at the model's frame count and resolution."""
    from maest.data import dataset_from_source

    d = cfg.data
    pe = (model.encoder if isinstance(model, ProbedEncoder) else model).patch_embed
    return dataset_from_source(
        d.source if mode == "finetune" else d.val_source, layout=d.layout, mode=mode, num_frames=pe.num_frames,
        sampling_rate=d.sampling_rate, crop_size=pe.img_size, repeat=d.repeat_aug, scale=(d.min_scale, 1.0),
        flip=d.flip, rand_aug=d.rand_aug, erase_prob=d.erase_prob, test_clips=d.test_clips,
        test_crops=d.test_crops, backend=d.backend,
    )


def run(cfg: FinetuneConfig, dataset: Dataset | None = None, val_dataset: Dataset | None = None) -> dict[str, Any]:
    """Fine-tune (or probe); returns a summary (steps, last loss, checkpoint, per-epoch validation).

    Args:
        cfg: the run configuration (validated here).
        dataset: optional map-style dataset yielding ``{"video": (r, C, T, H, W), "label": (r,),
            "skipped": [...]}``; built from ``cfg.data.source`` when None.
        val_dataset: optional dataset yielding one or more views per video; built from
            ``cfg.data.val_source`` when None and that is set.
    """
    cfg.validate()
    info = dist.init(cfg.train.device)
    try:
        return _run(cfg, dataset, val_dataset, info)
    finally:
        dist.shutdown()


def _run(cfg: FinetuneConfig, dataset: Dataset | None, val_dataset: Dataset | None,
         info: dist.DistInfo) -> dict[str, Any]:
    t, o, m = cfg.train, cfg.optim, cfg.model
    out_dir = Path(t.output_dir)
    torch.manual_seed(t.seed)
    resume_from = ckpt.resolve_resume(t.resume, out_dir)
    # a resumed run loads all weights from its checkpoint: no need to read the pre-training one
    model = build_classifier(cfg, init=resume_from is None).to(info.device)
    if dataset is None:
        dataset = build_dataset(cfg, model, "finetune")
    if val_dataset is None and cfg.data.val_source:
        val_dataset = build_dataset(cfg, model, "val")
    seeded = SeededItems(dataset, t.seed)
    num_items = len(seeded)
    if num_items == 0:
        raise ValueError(f"no videos found in {cfg.data.source!r}")
    sampler = ShardedSampler(num_items, t.seed, info.rank, info.world_size)
    micro_per_epoch = math.ceil(num_items / info.world_size) // t.batch_size
    steps_per_epoch = micro_per_epoch // t.accum_iter
    if steps_per_epoch == 0:
        raise ValueError(
            f"{num_items} videos over {info.world_size} process(es) do not fill one step of "
            f"batch_size={t.batch_size} x accum_iter={t.accum_iter}; lower train.batch_size or add videos"
        )
    total_steps = steps_per_epoch * t.epochs
    # the reference's fine-tuning lr counts videos, not repeated clips
    eff_batch = t.batch_size * t.accum_iter * info.world_size
    base_lr = o.lr if o.lr is not None else scaled_lr(o.blr, eff_batch)
    precision = resolve_precision(t.precision, info.device)
    mixup = Mixup(cfg.mix.mixup, cfg.mix.cutmix, cfg.mix.prob, cfg.mix.switch_prob, cfg.mix.smoothing, m.num_classes)

    decay_model = model.encoder if isinstance(model, ProbedEncoder) else model
    groups = param_groups_layer_decay(model, o.weight_decay, o.layer_decay, num_layers=len(decay_model.blocks) + 1)
    optimizer = build_adamw(groups, base_lr, (o.beta1, o.beta2), o.fused, info.device)
    step, start_epoch = 0, 0
    if resume_from is not None:
        state = ckpt.load_checkpoint(resume_from)
        ckpt.load_model_weights(model, ckpt.model_state(state))
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        start_epoch = step // steps_per_epoch
        if info.is_main:
            log.info("resumed from %s at step %d", resume_from, step)

    train_model = dist.wrap_ddp(model, info)
    if t.compile:
        train_model = torch.compile(train_model)
    logger = MetricsLogger(out_dir, enabled=info.is_main, tensorboard=t.tensorboard)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_json(cfg, out_dir / "config.json")
        log.info("%s %s: %d videos, %d steps/epoch x %d epochs, eff. batch %d (x%d clips), lr %.3g, %s on %s",
                 "finetune" if m.probe == "none" else f"{m.probe} probe", m.name, num_items, steps_per_epoch,
                 t.epochs, eff_batch, cfg.data.repeat_aug, base_lr, precision, info.device)
    last_step = total_steps if t.max_steps is None else min(total_steps, t.max_steps)
    summary: dict[str, Any] = {"steps": step, "loss": None, "checkpoint": None, "skipped": [], "val": [],
                               "steps_per_epoch": steps_per_epoch, "lr": base_lr, "precision": precision}
    progress = _progress(info.is_main and t.progress, total=last_step, initial=step)
    train_model.train()
    try:
        for epoch in range(start_epoch, t.epochs):
            if step >= last_step:
                break
            seeded.epoch = epoch
            skip_micro = (step - epoch * steps_per_epoch) * t.accum_iter
            sampler.set_epoch(epoch, start=skip_micro * t.batch_size)
            loader = build_loader(seeded, t.batch_size, sampler, cfg.data.num_workers,
                                  pin_memory=info.device.startswith("cuda"))
            tally = SkipTally()
            loss_sum, loss_n, t0 = torch.zeros((), device=info.device), 0, time.perf_counter()
            for micro, batch in enumerate(loader, start=skip_micro):
                if micro >= micro_per_epoch:
                    break  # the tail that does not fill a whole optimizer step
                tally.update(batch["skipped"])
                accum_pos = micro % t.accum_iter
                if accum_pos == 0:
                    lr = lr_at(step / steps_per_epoch, base_lr, o.min_lr, o.warmup_epochs, t.epochs)
                    for g in optimizer.param_groups:
                        g["lr"] = lr * g["lr_scale"]
                loss = _forward_loss(train_model, batch, mixup, cfg, info, step, accum_pos, precision)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"loss is {loss.item()} at step {step} (epoch {epoch}); lower optim.blr, set "
                        f"optim.clip_grad, or use train.precision=fp32. Last good checkpoint: {summary['checkpoint']}"
                    )
                (loss / t.accum_iter).backward()
                loss_sum += loss.detach()
                loss_n += 1
                if accum_pos != t.accum_iter - 1:
                    continue
                grad_norm = None
                if o.clip_grad is not None:
                    params = [p for g in optimizer.param_groups for p in g["params"]]
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, o.clip_grad)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                progress.update(1)
                if step % t.log_every == 0 or step == last_step:
                    mean_loss = dist.all_reduce_mean(loss_sum / loss_n).item()
                    rec = {"loss": mean_loss, "lr": lr, "epoch": step / steps_per_epoch,
                           "clips_per_s": loss_n * batch["video"].shape[0] * info.world_size
                           / (time.perf_counter() - t0)}
                    if grad_norm is not None:
                        rec["grad_norm"] = float(grad_norm)
                    logger.log(step, **rec)
                    progress.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
                    summary["loss"] = mean_loss
                    loss_sum, loss_n, t0 = torch.zeros((), device=info.device), 0, time.perf_counter()
                if t.save_every_steps and step % t.save_every_steps == 0:
                    summary["checkpoint"] = _save(model, optimizer, step, epoch, cfg, info)
                if step >= last_step:
                    break
            summary["skipped"] += _report_skipped(tally, epoch, info, logger, step)
            epoch_done = step == (epoch + 1) * steps_per_epoch
            if epoch_done or step >= last_step:
                summary["checkpoint"] = _save(model, optimizer, step, epoch, cfg, info)
                if val_dataset is not None:
                    summary["val"].append(_validate(model, val_dataset, cfg, info, precision, logger, step, epoch))
    finally:
        progress.close()
        logger.close()
    summary["steps"] = step
    return summary


def _forward_loss(model: nn.Module, batch: dict, mixup: Mixup, cfg: FinetuneConfig, info: dist.DistInfo,
                  step: int, micro: int, precision: str) -> torch.Tensor:
    """Mix the batch, forward, and return the classification loss (fp32 scalar)."""
    seed = cfg.train.seed
    video = batch["video"].to(info.device, non_blocking=True)
    target = batch["label"].to(info.device, non_blocking=True)
    if mixup.active:
        # soft targets (B, K) that already carry the label smoothing
        video, target = mixup(video, target, torch.Generator().manual_seed(mix_seed(seed, step, info.rank, micro)))
    # dropout and drop path draw from the global RNG: re-seed it so a resumed run draws the same masks
    torch.manual_seed(mix_seed(seed, step, info.rank, micro, 1))
    with autocast(info.device, precision):
        logits = model(video)
    return classification_loss(logits, target, cfg.mix.smoothing)


def _validate(model: nn.Module, dataset: Dataset, cfg: FinetuneConfig, info: dist.DistInfo, precision: str,
              logger: MetricsLogger, step: int, epoch: int) -> dict[str, Any]:
    acc, failed = predict_views(model, dataset, cfg.model.num_classes, cfg.train.batch_size, info.device,
                                precision, cfg.data.num_workers, info.rank, info.world_size)
    res = summarize(acc, failed)
    rec = {"epoch": epoch + 1, "val_top1": res["top1"], "val_top5": res["top5"], "val_failed": res["failed_videos"]}
    logger.log(step, **rec)
    if info.is_main:
        log.info("epoch %d: val top-1 %.2f%%, top-5 %.2f%% over %d videos (%d failed)", epoch + 1, res["top1"],
                 res["top5"], res["videos"], res["failed_videos"])
    return rec
