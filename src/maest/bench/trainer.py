"""``maest bench --trainer ROUNDS``: the package's own trainer (:func:`maest.train.pretrain.run`, loader,
masking noise, loss, clipping, AdamW, logging) beside the bare step of the same model (forward,
backward and AdamW on one random batch), interleaved in one process so shared load hits both alike.

The trainer reads clips from memory (decoded once, then sampled and augmented per item as from files),
with ``--trainer-files`` from generated moving-digit H.264 files, and with ``--trainer-cache`` from the same
files through ``data.cache=memory``. Its clips/s are the steady-state windows of its ``metrics.jsonl`` (the
first window, which holds ``torch.compile``'s warm-up, is left out).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
from pathlib import Path
from typing import Any

from maest.bench.step import prepare, time_step
from maest.data import write_moving_digits
from maest.data.memory import InMemoryClips
from maest.runs.metrics import read_metrics
from maest.train import loop
from maest.train.pretrain import run
from maest.train.recipes import get_preset


def trainer_config(model: str, data: Path, out: Path, args: argparse.Namespace, steps: int, workers: int) -> Any:
    """The ``demo`` pre-training recipe on ``model`` with this benchmark's precision, compile and batch."""
    cfg = get_preset("demo")
    cfg.model.adopt(model)
    repeat = args.trainer_repeat_aug
    cfg.data.source, cfg.data.num_workers, cfg.data.repeat_aug = str(data), workers, repeat
    cfg.data.transfer = args.trainer_transfer
    t = cfg.train
    t.output_dir, t.batch_size, t.max_steps, t.epochs = str(out), args.batch // repeat, steps, 10_000
    t.precision, t.compile, t.device = args.precisions[0], args.compile[0] == "on", args.device
    t.log_every, t.progress, t.tensorboard, t.keep_checkpoints = max(1, steps // 6), False, False, 1
    t.save_every_steps = 0
    return cfg


def bare_rate(model_name: str, mask_ratio: float, args: argparse.Namespace, steps: int) -> float:
    """Clips/s of the bare step, as ``maest bench``'s table times it (:func:`maest.bench.step.time_step`):
    the model on one random batch, forward + backward + AdamW, median of ``steps`` after 3 warm-up steps."""
    row = time_step(model_name, mask_ratio, args.precisions[0], args.compile[0] == "on", "maest", args.batch, steps, 3,
                    args.device)
    return row["clips_per_s"]


def trainer_rate(cfg: Any, dataset: Any) -> float:
    """Median clips/s of the trainer's logged windows after the first."""
    run(cfg, dataset=dataset)
    rates = [r["clips_per_s"] for r in read_metrics(Path(cfg.train.output_dir) / "metrics.jsonl")
             if "clips_per_s" in r]
    return statistics.median(rates[1:] or rates)


def check_trainer_args(args: argparse.Namespace) -> None:
    """Refuse, before any video is drawn, a repeat count or set size the trainer cannot step on."""
    repeat = args.trainer_repeat_aug
    if repeat < 1 or args.batch % repeat:
        raise ValueError(f"--trainer-repeat-aug {repeat} must be >= 1 and divide --batch {args.batch}: the trainer "
                         "takes --batch / R videos of R clips each")
    if args.trainer_videos < 0 or 0 < args.trainer_videos < args.batch // repeat:
        raise ValueError(f"--trainer-videos {args.trainer_videos} must hold at least one batch of "
                         f"{args.batch // repeat} videos (0: the default)")


def run_trainer(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Rows of (model, source, bare clips/s, trainer clips/s, ratio) over ``args.trainer`` interleaved rounds."""
    check_trainer_args(args)
    prepare(args)
    logging.getLogger("maest").setLevel(logging.WARNING)
    real_curves, loop.write_run_curves = loop.write_run_curves, lambda run_dir: None
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for name in args.models:
                rows += _model_rows(name, args, work)
    finally:
        loop.write_run_curves = real_curves
    return rows


def _model_rows(name: str, args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    probe = get_preset("demo")
    probe.model.adopt(name)
    e = probe.model.encoder
    frames = e.num_frames * probe.data.sampling_rate * 2
    videos = args.trainer_videos or max(64, 4 * args.batch)
    # digits half the frame wide (8 px sprites x scale), so any registered size can be drawn
    data = write_moving_digits(work / name, num_videos=videos, num_frames=frames, size=e.img_size,
                               digit_scale=max(1, e.img_size // 16), seed=0)
    sources = {"memory": args.trainer_workers}
    if args.trainer_files:
        sources["files"] = args.trainer_workers
    if args.trainer_cache:
        sources["cached"] = args.trainer_workers  # the files, through data.cache=memory
    steps = max(12, args.steps)
    rows = []
    for source, workers in sources.items():
        bare, trained = [], []
        for r in range(args.trainer):
            cfg = trainer_config(name, data["train"], work / f"{name}-{source}-{r}", args, steps, workers)
            cfg.data.cache = "memory" if source == "cached" else "none"
            dataset = InMemoryClips(cfg.data.build(cfg.model.encoder)) if source == "memory" else None
            bare.append(bare_rate(name, cfg.model.mask.ratio, args, steps))
            trained.append(trainer_rate(cfg, dataset))
        row = {"model": name, "source": source, "workers": workers, "repeat_aug": args.trainer_repeat_aug,
               "videos": videos, "transfer": args.trainer_transfer, "precision": args.precisions[0],
               "compile": args.compile[0], "batch": args.batch,
               "bare_clips_s": statistics.median(bare),
               "trainer_clips_s": statistics.median(trained)}
        row["ratio"] = row["trainer_clips_s"] / row["bare_clips_s"]
        print(f"{name:<8} {source:<6} workers {workers} repeat {args.trainer_repeat_aug} {row['precision']} "
              f"compile {row['compile']} batch {args.batch} videos {videos} {args.trainer_transfer}: "
              f"bare {row['bare_clips_s']:.1f} clips/s, "
              f"trainer {row['trainer_clips_s']:.1f} clips/s ({row['ratio']:.2f}x)", flush=True)
        rows.append(row)
    return rows
