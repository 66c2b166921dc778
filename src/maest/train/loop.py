"""The epoch loop shared by pre-training, fine-tuning and probing: resumable sharded sampling,
per-iteration lr (times each group's ``lr_scale``), gradient accumulation, a non-finite guard,
clipping, metrics, atomic checkpoints, an end-of-epoch tally of unreadable videos and an optional
end-of-epoch hook (validation). The job supplies the loss of one micro-batch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset

from maest import runtime
from maest.data.loader import SeededItems, SkipTally, build_run_loader, close_batches
from maest.figures.plots import write_run_curves
from maest.overrides import save_json
from maest.runs import checkpoint as ckpt
from maest.runs.folder import prepare_run_dir
from maest.runs.metrics import MetricsLogger
from maest.runs.preempt import Stopped, StopRequest
from maest.runs.progress import Silent, training_progress
from maest.train.run_folder import lock_run_dir
from maest.train.schedule import lr_at

log = logging.getLogger("maest")

# (train_model, batch, step, accum_pos) -> fp32 scalar loss of one micro-batch
LossFn = Callable[[nn.Module, dict, int, int], torch.Tensor]
# (epoch, step, logger) -> a record for summary["val"], or None
EpochHook = Callable[[int, int, MetricsLogger], dict | None]


def effective_batch(cfg: Any, info: runtime.DistInfo) -> int:
    """Videos per optimizer step over all processes (repeated clips not counted: the reference scales
    pre-training's lr by this, fine-tuning's by this times ``repeat_aug``)."""
    return cfg.train.batch_size * cfg.train.accum_iter * info.world_size


@dataclass
class Plan:
    """How a run divides into epochs and steps (per process)."""

    num_items: int  # videos (or streamed samples) per epoch over all processes
    micro_per_epoch: int  # micro-batches per epoch and process
    steps_per_epoch: int  # optimizer steps per epoch
    last_step: int  # where this run stops: the end of the last epoch, or train.max_steps

    @classmethod
    def of(cls, cfg: Any, num_items: int, info: runtime.DistInfo) -> Plan:
        t = cfg.train
        if num_items == 0:
            raise ValueError(f"no videos found in {cfg.data.source!r}")
        micro_per_epoch = math.ceil(num_items / info.world_size) // t.batch_size
        steps_per_epoch = micro_per_epoch // t.accum_iter
        if steps_per_epoch == 0:
            raise ValueError(
                f"{num_items} videos over {info.world_size} process(es) do not fill one step of "
                f"batch_size={t.batch_size} x accum_iter={t.accum_iter}; lower train.batch_size or add videos"
            )
        last = steps_per_epoch * t.epochs if t.max_steps is None else min(steps_per_epoch * t.epochs, t.max_steps)
        return cls(num_items, micro_per_epoch, steps_per_epoch, last)


@dataclass
class Run:
    """What one training run holds while it runs: the loop's own state, passed between its steps."""

    cfg: Any
    info: runtime.DistInfo
    plan: Plan
    model: nn.Module  # the bare model: checkpoints and clipping see its parameters
    train_model: nn.Module  # the model as trained: wrapped for DDP, compiled
    optimizer: torch.optim.Optimizer
    loss_fn: LossFn
    base_lr: float
    logger: MetricsLogger
    progress: Silent
    summary: dict[str, Any]
    guard: NonFiniteGuard
    stop: StopRequest  # SIGTERM / SIGINT: finish the step, save, raise Stopped
    stopping: bool = False  # every rank agreed to stop after the current step
    saved_at: float = 0.0  # time.monotonic() of the last save (train.save_every_minutes)


def train(cfg: Any, model: nn.Module, optimizer: torch.optim.Optimizer, dataset: Dataset, info: runtime.DistInfo,
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

    Raises:
        Stopped: SIGTERM or SIGINT arrived; the run finished its step, saved and wrote its curves.
        RunFolderBusy: another run holds the run folder (its lock is held for the whole run).
    """
    t = cfg.train
    # streaming datasets seed their items themselves, by the same (seed, epoch, video)
    seeded = dataset if isinstance(dataset, IterableDataset) else SeededItems(dataset, t.seed)
    plan = Plan.of(cfg, len(seeded), info)
    lock = lock_run_dir(cfg, info)
    try:
        with StopRequest() as stop:
            summary = _train(cfg, model, optimizer, seeded, info, plan, loss_fn, stop, base_lr=base_lr,
                             precision=precision, title=title, epoch_end=epoch_end)
    finally:
        if lock is not None:
            lock.release()
    # videos an in-memory set (data.cache=memory) could not decode, left out before the first epoch
    summary["skipped"] = list(getattr(dataset, "skipped", ())) + summary["skipped"]
    return summary


def _train(cfg: Any, model: nn.Module, optimizer: torch.optim.Optimizer, seeded: Dataset, info: runtime.DistInfo,
           plan: Plan, loss_fn: LossFn, stop: StopRequest, *, base_lr: float, precision: str, title: str,
           epoch_end: EpochHook | None) -> dict[str, Any]:
    """:func:`train` once the run folder is locked and the signals are caught."""
    t = cfg.train
    step = resume(cfg, model, optimizer, info)
    check_resume_point(cfg, plan, step, info)
    prepare_run_dir(cfg, step, info)
    train_model = runtime.wrap_ddp(model, info)
    if t.compile:
        train_model = torch.compile(train_model)
    logger = start_logging(cfg, info, plan, title, base_lr, precision)
    summary: dict[str, Any] = {"steps": step, "loss": None, "checkpoint": None, "skipped": [], "val": [],
                               "steps_per_epoch": plan.steps_per_epoch, "lr": base_lr, "precision": precision}
    progress = training_progress(info.is_main, t.progress, total=plan.last_step, initial=step, desc=title.split()[0])
    run = Run(cfg, info, plan, model, train_model, optimizer, loss_fn, base_lr, logger, progress, summary,
              NonFiniteGuard(info, Path(t.output_dir)), stop, saved_at=time.monotonic())
    batches = open_batches(run, seeded, step)
    train_model.train()
    try:
        for epoch in range(step // plan.steps_per_epoch, t.epochs):
            if step >= plan.last_step:
                break
            step = train_one_epoch(run, batches, epoch, step)
            if run.stopping:  # saved in the epoch, at its last step
                break
            if step == (epoch + 1) * plan.steps_per_epoch or step >= plan.last_step:
                summary["checkpoint"] = save(model, optimizer, step, epoch, cfg, info)
                if epoch_end is not None and (rec := epoch_end(epoch, step, logger)) is not None:
                    summary["val"].append(rec)
    finally:
        close_batches(batches)  # the loader's workers stop here, also when the run stops or fails
        progress.close()
        logger.close()
        if info.is_main:
            write_run_curves(Path(t.output_dir))  # curves.png; a missing matplotlib or a plot error is one warning
    summary["steps"] = step
    if run.stopping:
        raise Stopped(stop.signum or 15, step, summary["checkpoint"])
    return summary


def check_resume_point(cfg: Any, plan: Plan, step: int, info: runtime.DistInfo) -> None:
    """A resumed checkpoint past this run's last step is refused; one at it trains nothing, and says so."""
    t = cfg.train
    if step > plan.last_step:
        raise ValueError(f"--resume: the checkpoint is at step {step}, past this run's last step {plan.last_step} "
                         f"(train.epochs={t.epochs}, train.max_steps={t.max_steps}, {plan.steps_per_epoch} "
                         f"steps/epoch); raise train.max_steps or train.epochs to continue it, or start a new run")
    if step and step == plan.last_step and info.is_main:
        log.warning("--resume: the run already reached its last step (%d); nothing to train (raise train.epochs "
                    "or train.max_steps to train further)", step)


def resume(cfg: Any, model: nn.Module, optimizer: torch.optim.Optimizer, info: runtime.DistInfo) -> int:
    """Load the checkpoint ``train.resume`` names (if any) into model and optimizer; the step to start at."""
    t = cfg.train
    resume_from = ckpt.resolve_resume(t.resume, Path(t.output_dir))
    if resume_from is None:
        if t.resume is not None and info.is_main:
            log.warning("--resume: no checkpoint in %s yet; starting from step 0", t.output_dir)
        return 0
    state = load_resume_state(resume_from)
    runtime.load_state_dicts(model, optimizer, ckpt.model_state(state), state["optimizer"])
    if info.is_main:
        log.info("resumed from %s at step %d", resume_from, int(state["step"]))
    return int(state["step"])


def start_logging(cfg: Any, info: runtime.DistInfo, plan: Plan, title: str, base_lr: float,
                  precision: str) -> MetricsLogger:
    """The metrics logger; the main process also writes ``config.json`` and the start-of-run line."""
    t, out_dir = cfg.train, Path(cfg.train.output_dir)
    logger = MetricsLogger(out_dir, enabled=info.is_main, tensorboard=t.tensorboard, wandb=t.wandb,
                           config=cfg.to_dict())
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_json(cfg, out_dir / "config.json")
        log.info("%s: %d videos, %d steps/epoch x %d epochs, eff. batch %d (x%d clips), lr %.3g, %s on %s",
                 title, plan.num_items, plan.steps_per_epoch, t.epochs, effective_batch(cfg, info),
                 cfg.data.repeat_aug, base_lr, precision, info.device)
    return logger


def open_batches(run: Run, seeded: Dataset, step: int) -> Iterator[dict]:
    """One loader iterator for the rest of the run, from ``step`` on: workers start once and prefetch
    across epoch boundaries."""
    t, plan, info = run.cfg.train, run.plan, run.info
    if step >= plan.last_step:
        return iter(())
    first_epoch = step // plan.steps_per_epoch
    first_micro = (step - first_epoch * plan.steps_per_epoch) * t.accum_iter
    return iter(build_run_loader(
        seeded, t.batch_size, seed=t.seed, rank=info.rank, world=info.world_size,
        per_epoch=plan.micro_per_epoch * t.batch_size, epochs=t.epochs, first_epoch=first_epoch,
        start=first_micro * t.batch_size, num_workers=run.cfg.data.num_workers,
        pin_memory=info.device.startswith("cuda"),
        threads=decode_threads(run.cfg.data),
    ))


def decode_threads(data: Any) -> int:
    """Loading threads for the run: GPU decoding cannot live in worker processes, so threads decode and
    augment ahead of the step (``data.decode_threads``); none when decoding on the CPU."""
    if getattr(data, "decode_device", "cpu") == "cpu":
        return 0
    return getattr(data, "decode_threads", 0)


def train_one_epoch(run: Run, batches: Iterator[dict], epoch: int, step: int) -> int:
    """Train from ``step`` to the end of ``epoch`` (or the plan's last step); the step reached.

    Per micro-batch: the lr for the step, the job's loss, backward (scaled for accumulation); per
    optimizer step: clipping, the update, metrics every ``train.log_every`` steps, optional saves.
    """
    t, o, plan, info = run.cfg.train, run.cfg.optim, run.plan, run.info
    tally = SkipTally()
    no_motion = SkipTally()  # clips masked randomly for want of a motion field (model.mask.strategy=motion)
    meter = LossMeter(info.device)
    # zip stops at the epoch's last micro-batch without drawing the next epoch's first
    for micro, batch in zip(range((step - epoch * plan.steps_per_epoch) * t.accum_iter, plan.micro_per_epoch),
                            batches, strict=False):
        tally.update(batch["skipped"])
        no_motion.update(batch.get("no_motion", []))
        if micro >= plan.steps_per_epoch * t.accum_iter:
            # an epoch's last, incomplete accumulation: the official loop computes it and drops its
            # gradient (zero_grad at the next epoch's start); the batches are drawn, the work is not done
            continue
        accum_pos = micro % t.accum_iter
        if accum_pos == 0:
            # the official per-iteration schedule: the fraction of the epoch's micro-batches done
            lr = set_lr(run.optimizer, epoch + micro / plan.micro_per_epoch, run.base_lr, o, t.epochs)
        last_micro = accum_pos == t.accum_iter - 1
        with runtime.no_sync(run.train_model, sync=last_micro):
            loss = run.loss_fn(run.train_model, batch, step, accum_pos)
            run.guard.watch(loss, step, epoch)
            (loss / t.accum_iter).backward()
        meter.add(loss, batch["video"].shape[0])
        if not last_micro:
            continue
        grad_norm = None
        if o.clip_grad is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), o.clip_grad)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        step += 1
        run.progress.update(1)
        if step % t.log_every == 0 or step == plan.last_step:
            run.guard.check()
            log_step(run, meter, step, lr, grad_norm)
        # every rank agrees on a signal's stop step and on the timer's saves
        stop, timed = runtime.any_rank(run.stop.requested, save_due(t, run.saved_at))
        run.stopping = stop and step < plan.last_step  # at the last step the run simply ends
        if run.stopping or timed or t.save_every_steps and step % t.save_every_steps == 0:
            run.guard.check()  # never save weights a non-finite loss has touched
            run.summary["checkpoint"] = save(run.model, run.optimizer, step, epoch, run.cfg, info)
            run.saved_at = time.monotonic()
        if step >= plan.last_step or run.stopping:
            break
    run.guard.check()
    if run.stopping:  # the rest of the epoch comes after the resume
        return step
    run.summary["skipped"] += report_skipped(tally, epoch, info, run.logger, step, no_motion)
    if getattr(getattr(run.cfg.model, "mask", None), "strategy", None) == "motion":
        run.summary["motion_fallback"] = run.summary.get("motion_fallback", 0) + no_motion.total
    run.progress.epoch_end(epoch, t.epochs, step)
    return step


def save_due(t: Any, saved_at: float) -> bool:
    """Whether ``train.save_every_minutes`` have passed since the last save (never when it is 0)."""
    return bool(t.save_every_minutes) and time.monotonic() - saved_at >= 60 * t.save_every_minutes


def set_lr(optimizer: torch.optim.Optimizer, epoch: float, base_lr: float, o: Any, epochs: int) -> float:
    """The schedule's lr at fractional ``epoch``, set on every group (times its ``lr_scale``)."""
    lr = lr_at(epoch, base_lr, o.min_lr, o.warmup_epochs, epochs)
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
    return lr


class NonFiniteGuard:
    """Stops the run at a NaN/inf loss, naming its step, without a host read per micro-batch where one
    costs a device sync: alone on the CPU each loss is checked at once; on a GPU, or with several
    processes, the first bad step is kept on the device and checked (all-reduced, so every rank stops
    together) at log steps, before saves and at epoch ends."""

    def __init__(self, info: runtime.DistInfo, out_dir: Path) -> None:
        self.eager = info.device == "cpu" and not info.enabled
        self.out_dir = out_dir
        self.first = torch.full((2,), -1.0, device=info.device, dtype=torch.float64)  # (step, epoch)
        self._unit = torch.eye(2, device=info.device, dtype=torch.float64)  # made once: see watch

    def watch(self, loss: torch.Tensor, step: int, epoch: int) -> None:
        if self.eager:
            if not torch.isfinite(loss):
                raise non_finite_loss(loss.item(), step, epoch, self.out_dir)
            return
        bad = ~torch.isfinite(loss.detach()) & (self.first[0] < 0)
        # step and epoch reach the kernels as arguments; torch.tensor([step, epoch], device=...) would be a
        # blocking host-to-device copy per micro-batch
        self.first = torch.where(bad, self._unit[0] * step + self._unit[1] * epoch, self.first)

    def check(self) -> None:
        if self.eager:
            return
        step, epoch = (int(v) for v in runtime.all_reduce_max(self.first).tolist())
        if step >= 0:
            raise non_finite_loss(float("nan"), step, epoch, self.out_dir)


class LossMeter:
    """The summed loss and clip count since the last log line, kept on the device (no host sync per step)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.total, self.n, self.clips, self.t0 = torch.zeros((), device=self.device), 0, 0, time.perf_counter()

    def add(self, loss: torch.Tensor, clips: int) -> None:
        self.total += loss.detach()
        self.n += 1
        self.clips += clips


def log_step(run: Run, meter: LossMeter, step: int, lr: float, grad_norm: torch.Tensor | None) -> None:
    """One metrics record: the loss averaged over micro-batches and processes, lr, clips/s, grad norm."""
    mean_loss = runtime.all_reduce_mean(meter.total / meter.n).item()
    rec = {"loss": mean_loss, "lr": lr, "epoch": step / run.plan.steps_per_epoch,
           "clips_per_s": meter.clips * run.info.world_size / (time.perf_counter() - meter.t0)}
    if grad_norm is not None:
        rec["grad_norm"] = float(grad_norm)
    run.logger.log(step, **rec)
    run.progress.report(step, rec)
    run.summary["loss"] = mean_loss
    meter.reset()


def save(model: nn.Module, optimizer: torch.optim.Optimizer, step: int, epoch: int, cfg: Any,
         info: runtime.DistInfo) -> str | None:
    """Atomically write ``checkpoint-<step>.pt`` (main process) and prune old ones."""
    path = ckpt.checkpoint_path(cfg.train.output_dir, step)
    model_state, optim_state = runtime.state_dicts(model, optimizer)  # a collective under FSDP
    if info.is_main:  # replaces a same-named file: prepare_run_dir saw to it that none is another run's
        state = ckpt.training_state(model_state, optim_state, step, epoch, cfg.to_dict(), cfg.model.kind)
        ckpt.atomic_save(state, path)
        ckpt.prune_checkpoints(cfg.train.output_dir, cfg.train.keep_checkpoints)
        ckpt.remove_stale_temporaries(cfg.train.output_dir)
    runtime.barrier()
    return str(path)


def report_skipped(tally: SkipTally, epoch: int, info: runtime.DistInfo, logger: MetricsLogger, step: int,
                   no_motion: SkipTally | None = None) -> list[str]:
    """Gather unreadable-video reports from all ranks; the main process logs the epoch's count. With
    ``no_motion`` (motion-guided masking) the clips that had no motion field and were masked randomly are
    gathered, logged and counted too (``motion_fallback_clips``); ``no_motion`` then holds every rank's."""
    every = SkipTally()
    for paths in runtime.all_gather_objects(tally.paths):
        every.update(paths)
    if every.total and info.is_main:
        log.warning("epoch %d: %s", epoch, every.report())
    extra = {}
    if no_motion is not None and (got := runtime.all_gather_objects(no_motion.paths)) and any(got):
        no_motion.paths = [p for paths in got for p in paths]
        if info.is_main:
            log.warning("epoch %d: %d clips (%d videos) had no motion vectors or flow and were masked randomly",
                        epoch, no_motion.total, len(no_motion.unique))
        extra["motion_fallback_clips"] = no_motion.total
    logger.log(step, skipped_videos=every.total, epoch_end=epoch, **extra)
    return every.paths


def load_resume_state(path: str | Path) -> dict[str, Any]:
    """The checkpoint to resume from; a weights-only file (no optimizer state or step) is refused.

    Every rank maps the file (``mmap``) instead of reading it: the pages come from the page cache that
    ranks on a node share, and are copied only into the model and optimizer state (on the GPU, or on
    write), so N ranks no longer hold N full copies (ViT-L with AdamW: ~4 GB each). Cheaper than rank 0
    reading and broadcasting, which would also need a collective before the first step."""
    state = ckpt.load_checkpoint(path, mmap=True)
    missing = [k for k in ("optimizer", "step") if k not in state]
    if missing:
        raise ckpt.CheckpointError(
            f"{path} holds model weights only (no {' or '.join(missing)}), so a run cannot resume from it; "
            f"start a new run from these weights with --init {path} (finetune, linprobe) instead of --resume"
        )
    return state


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


