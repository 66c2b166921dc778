"""The epoch loop shared by pre-training, fine-tuning and probing: resumable sharded sampling,
per-iteration lr (times each group's ``lr_scale``), gradient accumulation, a non-finite guard,
clipping, metrics, atomic checkpoints, an end-of-epoch tally of unreadable videos and an optional
end-of-epoch hook (validation). The job supplies the loss of one micro-batch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset

from maest import checkpoint as ckpt
from maest import distributed as dist
from maest.config import save_json
from maest.data.loader import SeededItems, SkipTally, build_run_loader
from maest.plots import write_run_curves
from maest.schedule import lr_at
from maest.tracking import MetricsLogger

log = logging.getLogger("maest")

# (train_model, batch, step, accum_pos) -> fp32 scalar loss of one micro-batch
LossFn = Callable[[nn.Module, dict, int, int], torch.Tensor]
# (epoch, step, logger) -> a record for summary["val"], or None
EpochHook = Callable[[int, int, MetricsLogger], dict | None]


def effective_batch(cfg: Any, info: dist.DistInfo) -> int:
    """Videos per optimizer step over all processes (repeated clips not counted, as the reference)."""
    return cfg.train.batch_size * cfg.train.accum_iter * info.world_size


def train(cfg: Any, model: nn.Module, optimizer: torch.optim.Optimizer, dataset: Dataset, info: dist.DistInfo,
          loss_fn: LossFn, *, base_lr: float, precision: str, title: str,
          epoch_end: EpochHook | None = None) -> dict[str, Any]:
    """Run ``cfg.train.epochs`` epochs (or up to ``cfg.train.max_steps``), resuming per ``cfg.train.resume``.

    Args:
        cfg: a config with ``train``, ``optim`` (lr schedule, ``clip_grad``) and ``data`` (``num_workers``,
            ``repeat_aug``, ``source``) sections, and ``to_dict()``.
        model: the bare model (already on ``info.device``); wrapped here for DDP / compile.
        loss_fn: the loss of one micro-batch.
        base_lr: peak lr; each param group gets ``lr * group.get("lr_scale", 1)``.
        title: what the start-of-run log line calls the job.
        epoch_end: called after each epoch's checkpoint.

    Returns:
        summary: steps, last logged loss, checkpoint, skipped video paths, per-epoch hook records, lr, precision.
    """
    t, o = cfg.train, cfg.optim
    out_dir = Path(t.output_dir)
    # streaming datasets seed their items themselves, by the same (seed, epoch, video)
    seeded = dataset if isinstance(dataset, IterableDataset) else SeededItems(dataset, t.seed)
    num_items = len(seeded)
    if num_items == 0:
        raise ValueError(f"no videos found in {cfg.data.source!r}")
    micro_per_epoch = math.ceil(num_items / info.world_size) // t.batch_size
    steps_per_epoch = micro_per_epoch // t.accum_iter
    if steps_per_epoch == 0:
        raise ValueError(
            f"{num_items} videos over {info.world_size} process(es) do not fill one step of "
            f"batch_size={t.batch_size} x accum_iter={t.accum_iter}; lower train.batch_size or add videos"
        )
    total_steps = steps_per_epoch * t.epochs
    step, start_epoch = 0, 0
    resume_from = ckpt.resolve_resume(t.resume, out_dir)
    if resume_from is not None:
        state = ckpt.load_checkpoint(resume_from)
        dist.load_state_dicts(model, optimizer, ckpt.model_state(state), state["optimizer"])
        step = int(state["step"])
        start_epoch = step // steps_per_epoch
        if info.is_main:
            log.info("resumed from %s at step %d", resume_from, step)

    train_model = dist.wrap_ddp(model, info)
    if t.compile:
        train_model = torch.compile(train_model)
    logger = MetricsLogger(out_dir, enabled=info.is_main, tensorboard=t.tensorboard,
                           wandb=getattr(t, "wandb", False), config=cfg.to_dict())
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_json(cfg, out_dir / "config.json")
        log.info(
            "%s: %d videos, %d steps/epoch x %d epochs, eff. batch %d (x%d clips), lr %.3g, %s on %s",
            title, num_items, steps_per_epoch, t.epochs, effective_batch(cfg, info), cfg.data.repeat_aug, base_lr,
            precision, info.device,
        )
    last_step = total_steps if t.max_steps is None else min(total_steps, t.max_steps)
    summary: dict[str, Any] = {"steps": step, "loss": None, "checkpoint": None, "skipped": [], "val": [],
                               "steps_per_epoch": steps_per_epoch, "lr": base_lr, "precision": precision}
    progress = _progress(info.is_main and t.progress, total=last_step, initial=step, desc=title.split()[0])
    train_model.train()
    # one loader iterator for the whole run: workers start once and prefetch across epoch boundaries
    first_micro = (step - start_epoch * steps_per_epoch) * t.accum_iter
    batches = iter(build_run_loader(
        seeded, t.batch_size, seed=t.seed, rank=info.rank, world=info.world_size,
        per_epoch=micro_per_epoch * t.batch_size, epochs=t.epochs, first_epoch=start_epoch,
        start=first_micro * t.batch_size, num_workers=cfg.data.num_workers, pin_memory=info.device.startswith("cuda"),
    )) if step < last_step else iter(())
    try:
        for epoch in range(start_epoch, t.epochs):
            if step >= last_step:
                break
            skip_micro = (step - epoch * steps_per_epoch) * t.accum_iter
            tally = SkipTally()
            loss_sum, loss_n = torch.zeros((), device=info.device), 0
            t0 = time.perf_counter()
            for micro, batch in zip(range(skip_micro, micro_per_epoch), batches):
                tally.update(batch["skipped"])
                accum_pos = micro % t.accum_iter
                if accum_pos == 0:
                    lr = lr_at(step / steps_per_epoch, base_lr, o.min_lr, o.warmup_epochs, t.epochs)
                    for g in optimizer.param_groups:
                        g["lr"] = lr * g.get("lr_scale", 1.0)
                loss = loss_fn(train_model, batch, step, accum_pos)
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
                    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), o.clip_grad)
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
                    summary["checkpoint"] = save(model, optimizer, step, epoch, cfg, info)
                if step >= last_step:
                    break
            summary["skipped"] += report_skipped(tally, epoch, info, logger, step)
            epoch_done = step == (epoch + 1) * steps_per_epoch
            if epoch_done or step >= last_step:
                summary["checkpoint"] = save(model, optimizer, step, epoch, cfg, info)
                if epoch_end is not None and (rec := epoch_end(epoch, step, logger)) is not None:
                    summary["val"].append(rec)
    finally:
        progress.close()
        logger.close()
        if info.is_main:
            write_run_curves(out_dir)  # curves.png; a missing matplotlib or a plot error is one warning
    summary["steps"] = step
    return summary


def save(model: nn.Module, optimizer: torch.optim.Optimizer, step: int, epoch: int, cfg: Any,
         info: dist.DistInfo) -> str | None:
    """Atomically write ``checkpoint-<step>.pt`` (main process) and prune old ones."""
    path = ckpt.checkpoint_path(cfg.train.output_dir, step)
    model_state, optim_state = dist.state_dicts(model, optimizer)  # a collective under FSDP
    if info.is_main and not path.exists():
        ckpt.atomic_save(ckpt.training_state(model_state, optim_state, step, epoch, cfg.to_dict()), path)
        ckpt.prune_checkpoints(cfg.train.output_dir, cfg.train.keep_checkpoints)
    dist.barrier()
    return str(path)


def report_skipped(tally: SkipTally, epoch: int, info: dist.DistInfo, logger: MetricsLogger, step: int) -> list[str]:
    """Gather unreadable-video reports from all ranks; the main process logs the epoch's count."""
    every = SkipTally()
    for paths in dist.all_gather_objects(tally.paths):
        every.update(paths)
    if every.total and info.is_main:
        log.warning("epoch %d: %s", epoch, every.report())
    logger.log(step, skipped_videos=every.total, epoch_end=epoch)
    return every.paths


class _NoProgress:
    def update(self, n: int) -> None: ...
    def set_postfix(self, **kw) -> None: ...
    def close(self) -> None: ...


def _progress(enabled: bool, total: int, initial: int, desc: str):
    if not enabled:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)
