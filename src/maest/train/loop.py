"""The epoch loop shared by pre-training, fine-tuning and probing: resumable sharded sampling,
per-iteration lr (times each group's ``lr_scale``), gradient accumulation, a non-finite guard,
clipping, metrics, atomic checkpoints, an end-of-epoch tally of unreadable videos and an optional
end-of-epoch hook (validation). The job supplies the loss of one micro-batch.
"""

from __future__ import annotations

import datetime
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset

from maest import runtime as dist
from maest.data.loader import SeededItems, SkipTally, build_run_loader
from maest.figures.plots import write_run_curves
from maest.overrides import save_json
from maest.runs import checkpoint as ckpt
from maest.runs.metrics import MetricsLogger, records_after, truncate_metrics
from maest.runs.outputs import writable_dir
from maest.train.schedule import lr_at

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
        state = load_resume_state(resume_from)
        dist.load_state_dicts(model, optimizer, ckpt.model_state(state), state["optimizer"])
        step = int(state["step"])
        start_epoch = step // steps_per_epoch
        if info.is_main:
            log.info("resumed from %s at step %d", resume_from, step)
    elif t.resume is not None and info.is_main:
        log.warning("--resume: no checkpoint in %s yet; starting from step 0", out_dir)
    prepare_run_dir(cfg, step, info)

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
    progress = _progress(info.is_main, t.progress, total=last_step, initial=step, desc=title.split()[0])
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
            # zip stops at the epoch's last micro-batch without drawing the next epoch's first
            for micro, batch in zip(range(skip_micro, micro_per_epoch), batches, strict=False):
                tally.update(batch["skipped"])
                accum_pos = micro % t.accum_iter
                if accum_pos == 0:
                    lr = lr_at(step / steps_per_epoch, base_lr, o.min_lr, o.warmup_epochs, t.epochs)
                    for g in optimizer.param_groups:
                        g["lr"] = lr * g.get("lr_scale", 1.0)
                loss = loss_fn(train_model, batch, step, accum_pos)
                if not torch.isfinite(loss):
                    raise non_finite_loss(loss.item(), step, epoch, out_dir)
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
                    progress.report(step, rec)
                    summary["loss"] = mean_loss
                    loss_sum, loss_n, t0 = torch.zeros((), device=info.device), 0, time.perf_counter()
                if t.save_every_steps and step % t.save_every_steps == 0:
                    summary["checkpoint"] = save(model, optimizer, step, epoch, cfg, info)
                if step >= last_step:
                    break
            summary["skipped"] += report_skipped(tally, epoch, info, logger, step)
            progress.epoch_end(epoch, t.epochs, step)
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
    if info.is_main:  # replaces a same-named file: prepare_run_dir saw to it that none is another run's
        state = ckpt.training_state(model_state, optim_state, step, epoch, cfg.to_dict(), cfg.model.kind)
        ckpt.atomic_save(state, path)
        ckpt.prune_checkpoints(cfg.train.output_dir, cfg.train.keep_checkpoints)
        ckpt.remove_stale_temporaries(cfg.train.output_dir)
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


def load_resume_state(path: str | Path) -> dict[str, Any]:
    """The checkpoint to resume from; a weights-only file (no optimizer state or step) is refused."""
    state = ckpt.load_checkpoint(path)
    missing = [k for k in ("optimizer", "step") if k not in state]
    if missing:
        raise ckpt.CheckpointError(
            f"{path} holds model weights only (no {' or '.join(missing)}), so a run cannot resume from it; "
            f"start a new run from these weights with --init {path} (finetune, linprobe) instead of --resume"
        )
    return state


def prepare_run_dir(cfg: Any, start_step: int, info: dist.DistInfo) -> None:
    """Make ``train.output_dir`` ready for a run that starts at ``start_step``.

    A folder holding checkpoints past ``start_step`` (or, for a run that does not resume, another run's
    metrics) is refused unless ``train.overwrite``, which deletes them (and, for a run from step 0, the
    earlier TensorBoard events). Metrics logged after
    ``start_step`` (by the interrupted run being resumed) are dropped so each step appears once, and
    temporaries of saves killed mid-write are removed.

    Raises:
        ValueError: the folder cannot be written, or holds another run (the message names the fixes).
    """
    t = cfg.train
    out_dir = writable_dir(t.output_dir, "--output-dir (train.output_dir)")
    later = [p for p in ckpt.list_checkpoints(out_dir) if ckpt.checkpoint_step(p) > start_step]
    metrics = out_dir / "metrics.jsonl"
    if not t.overwrite and (later or (t.resume is None and records_after(metrics, start_step))):
        what = (f"{len(later)} checkpoint(s) of an earlier run (newest {later[-1].name})" if later
                else f"the {metrics.name} of an earlier run")
        where = f", newer than the resume point (step {start_step})" if later and start_step else ""
        raise ValueError(
            f"run folder {out_dir} already holds {what}{where}; continue that run with --resume "
            "(train.resume=auto), choose a new --output-dir, or pass --overwrite (train.overwrite=true) to replace it"
        )
    overwrite, t.overwrite = t.overwrite, False  # one-shot: a reused config.json never replaces a folder by itself
    if not info.is_main:
        return
    for p in later:
        p.unlink(missing_ok=True)
    if later:
        log.warning("--overwrite: deleted %d checkpoint(s) of the earlier run in %s", len(later), out_dir)
    events = list(out_dir.glob("tb/events.out.tfevents.*")) if overwrite and start_step == 0 else []
    for p in events:
        p.unlink(missing_ok=True)
    if events:
        log.warning("--overwrite: deleted the earlier run's TensorBoard events in %s", out_dir / "tb")
    if dropped := truncate_metrics(metrics, start_step):
        log.info("%s: dropped %d record(s) logged after step %d by the earlier run", metrics, dropped, start_step)
    if stale := ckpt.remove_stale_temporaries(out_dir):
        log.info("removed %d temporary file(s) of interrupted saves from %s", len(stale), out_dir)


def non_finite_loss(value: float, step: int, epoch: int, out_dir: Path) -> FloatingPointError:
    """The one-line error for a NaN/inf loss at ``step``, naming the newest checkpoint from before it
    (its own step's loss was finite, so its weights are good)."""
    good = [p for p in ckpt.list_checkpoints(out_dir) if ckpt.checkpoint_step(p) < step]
    where = (f"last good checkpoint: {good[-1]} (continue from it with --resume {good[-1]})" if good
             else f"no checkpoint from before step {step} is kept")
    return FloatingPointError(
        f"loss is {value} at step {step} (epoch {epoch}); lower optim.blr, set optim.clip_grad, or use "
        f"train.precision=fp32; {where}"
    )


class _Silent:
    """Progress reporting of the non-main processes: nothing."""

    def update(self, n: int) -> None: ...
    def report(self, step: int, rec: dict[str, float]) -> None: ...
    def epoch_end(self, epoch: int, epochs: int, step: int) -> None: ...
    def close(self) -> None: ...


class _EpochLines(_Silent):
    """One log line per epoch (``train.progress=false``, and under the two below)."""

    def __init__(self, total: int, initial: int, desc: str) -> None:
        self.total, self.initial, self.desc = total, initial, desc
        self.start = self.epoch_start = time.perf_counter()
        self.logged: tuple[int, float] | None = None  # (step, loss) of the last metrics record

    def report(self, step: int, rec: dict[str, float]) -> None:
        self.logged = (step, rec["loss"])

    def epoch_end(self, epoch: int, epochs: int, step: int) -> None:
        now = time.perf_counter()
        loss = f", loss {self.logged[1]:.4f} (step {self.logged[0]})" if self.logged else ""
        log.info("epoch %d/%d: step %d/%d, %.1fs%s", epoch + 1, epochs, step, self.total, now - self.epoch_start, loss)
        self.epoch_start = now


class _StepLines(_EpochLines):
    """Plain lines for logs that are not a terminal (a pipe, a file): every ``log_every`` steps and per epoch."""

    def report(self, step: int, rec: dict[str, float]) -> None:
        super().report(step, rec)
        elapsed, done = time.perf_counter() - self.start, step - self.initial
        eta = datetime.timedelta(seconds=round(elapsed / done * (self.total - step))) if done > 0 else "?"
        log.info("%s step %d/%d: loss %.4f, lr %.3g, %.1f clips/s, ETA %s", self.desc, step, self.total, rec["loss"],
                 rec["lr"], rec["clips_per_s"], eta)


class _Bar(_EpochLines):
    """A tqdm bar on a terminal; log lines are printed above it instead of through it."""

    def __init__(self, total: int, initial: int, desc: str) -> None:
        from tqdm.auto import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        super().__init__(total, initial, desc)
        self._redirect = logging_redirect_tqdm()
        self._redirect.__enter__()
        self._bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)

    def update(self, n: int) -> None:
        self._bar.update(n)

    def report(self, step: int, rec: dict[str, float]) -> None:
        super().report(step, rec)
        self._bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{rec['lr']:.2e}")

    def close(self) -> None:
        self._bar.close()
        self._redirect.__exit__(None, None, None)


def _progress(is_main: bool, bar: bool, total: int, initial: int, desc: str) -> _Silent:
    """A tqdm bar on a terminal, plain step lines elsewhere, epoch lines only without ``bar``."""
    if not is_main:
        return _Silent()
    if not bar:
        return _EpochLines(total, initial, desc)
    return (_Bar if sys.stderr.isatty() else _StepLines)(total, initial, desc)
