"""The run folder at a training job's start: checked before the job's slow start-up (building its data), then
locked for the run (:mod:`maest.runs.lock`, :mod:`maest.runs.folder`); every rank takes the same decision."""

from __future__ import annotations

from typing import Any

from maest import runtime
from maest.runs.folder import other_run
from maest.runs.lock import RunFolderBusy, RunLock, busy_message, holder
from maest.runs.outputs import writable_dir


def check_before_start(cfg: Any, info: Any) -> None:
    """What :func:`maest.runs.folder.prepare_run_dir` and the run's lock would refuse, checked before a job's
    slow start-up (``data.cache=memory`` decodes the whole training set first), so that a run that cannot go
    into its folder stops at once: a live run holding the folder, or, for a run that does not resume, another
    run's checkpoints or metrics. Takes and changes nothing; the trainer checks again under the lock. Every
    rank raises when the main process finds a problem (a collective: all ranks call it)."""
    problem, busy = None, False
    if info.is_main:
        if who := holder(cfg.train.output_dir):
            problem, busy = busy_message(cfg.train.output_dir, who), True
        elif cfg.train.resume is None:
            problem = other_run(cfg, 0)
    if runtime.any_rank(problem is not None)[0]:
        problem = problem or f"run folder {cfg.train.output_dir} cannot take this run (see rank 0)"
        raise RunFolderBusy(problem) if busy else ValueError(problem)


def lock_run_dir(cfg: Any, info: runtime.DistInfo) -> RunLock | None:
    """The main process's lock on ``train.output_dir`` (see :mod:`maest.runs.lock`); every rank raises
    :class:`RunFolderBusy` when another run holds it."""
    lock, busy = None, None
    if info.is_main:
        try:
            lock = RunLock(writable_dir(cfg.train.output_dir, "--output-dir (train.output_dir)")).acquire()
        except RunFolderBusy as e:
            busy = e
    if runtime.any_rank(busy is not None)[0]:
        raise busy or RunFolderBusy(f"run folder {cfg.train.output_dir} is in use by another run (see rank 0)")
    return lock
