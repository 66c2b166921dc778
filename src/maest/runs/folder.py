"""A run folder made ready for a run that starts at a given step: another run's checkpoints and metrics
are refused unless the user asked to replace them, a resumed run's later records are dropped, and the
temporaries of saves killed mid-write are removed. (The lock that keeps a second run out while one
trains is :mod:`maest.runs.lock`.)"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from maest.runs import checkpoint as ckpt
from maest.runs.metrics import records_after, truncate_metrics
from maest.runs.outputs import writable_dir

log = logging.getLogger("maest")


def other_run(cfg: Any, start_step: int) -> str | None:
    """Why ``train.output_dir`` cannot take a run starting at ``start_step`` (it holds checkpoints past it or,
    for a run that does not resume, another run's metrics; ``train.overwrite`` allows both), else None."""
    t = cfg.train
    out_dir = Path(t.output_dir)
    if t.overwrite or not out_dir.is_dir():
        return None
    later = [p for p in ckpt.list_checkpoints(out_dir) if ckpt.checkpoint_step(p) > start_step]
    metrics = out_dir / "metrics.jsonl"
    if not (later or (t.resume is None and records_after(metrics, start_step))):
        return None
    what = (f"{len(later)} checkpoint(s) of an earlier run (newest {later[-1].name})" if later
            else f"the {metrics.name} of an earlier run")
    where = f", newer than the resume point (step {start_step})" if later and start_step else ""
    return (f"run folder {out_dir} already holds {what}{where}; continue that run with --resume (train.resume=auto), "
            "choose a new --output-dir, or pass --overwrite (train.overwrite=true) to replace it")


def prepare_run_dir(cfg: Any, start_step: int, info: Any) -> None:
    """Make ``train.output_dir`` ready for a run that starts at ``start_step`` (``info``: the process's
    ``runtime.DistInfo``; only the main process changes files).

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
    metrics = out_dir / "metrics.jsonl"
    if problem := other_run(cfg, start_step):
        raise ValueError(problem)
    later = [p for p in ckpt.list_checkpoints(out_dir) if ckpt.checkpoint_step(p) > start_step]
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
