"""Metrics sinks for the main process: a JSONL file (one record per log event), TensorBoard and,
optionally, Weights & Biases (``train.wandb=true``; ``WANDB_MODE=offline`` and the other ``WANDB_*``
variables are honoured by wandb itself), and the one reader of ``metrics.jsonl``: :func:`read_metrics`
for a finished file, :func:`scan_metrics` for one a run may be writing now."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any

_TORN = object()  # a metrics.jsonl line that is not JSON (cut off by a kill, or being written now)


class MetricsLogger:
    """Writes ``{"step": ..., "time": ..., **metrics}`` lines to ``metrics.jsonl`` and scalars to
    TensorBoard under ``run_dir/tb`` (``tensorboard``: True, False, or None = when installed), and to a
    wandb run (same metric names and steps) when ``wandb``. Inactive (no files) when ``enabled`` is False
    (non-zero ranks). ``config`` is the run's config dict, recorded by wandb."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True, wandb: bool = False,
                 config: dict[str, Any] | None = None) -> None:
        self.enabled = enabled
        self._file = None
        self._tb = None
        self._wandb = None
        if not enabled:
            return
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if wandb:
            self._wandb = start_wandb(run_dir, config)
        self._file = open(run_dir / "metrics.jsonl", "a", buffering=1)
        # None (train.tensorboard's default): TensorBoard when its package is installed
        if tensorboard or (tensorboard is None and importlib.util.find_spec("tensorboard") is not None):
            self._tb = _summary_writer(run_dir / "tb")

    def log(self, step: int, **metrics: Any) -> None:
        if not self.enabled:
            return
        record = {"step": step, "time": round(time.time(), 3), **metrics}
        self._file.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))
                             and not isinstance(v, bool)}, step=step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a finished ``metrics.jsonl`` file, in order (:func:`scan_metrics` reads one a run
    may be writing now).

    Raises:
        json.JSONDecodeError: a line is not JSON.
        FileNotFoundError: there is no file.
    """
    return [json.loads(line) for line in _lines(Path(path))]


def scan_metrics(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """The records (JSON objects with a ``step``) of ``metrics.jsonl`` at ``path`` and how many lines
    could not be used (not JSON, or not :func:`well_formed`); ([], 0) when there is no file. Never raises
    on the content, so a file a run is writing now (or a damaged one) can be read."""
    p = Path(path)
    if not p.is_file():
        return [], 0
    records, bad = [], 0
    for _, rec in _parsed(p, errors="replace"):
        if rec is _TORN or isinstance(rec, dict) and "step" in rec and not well_formed(rec):
            bad += 1
        elif isinstance(rec, dict) and "step" in rec:
            records.append(rec)
    return records, bad


# fields maest logs as numbers (val_* too): a record where one is anything else was not written by maest
NUMERIC = ("loss", "lr", "grad_norm", "clips_per_s", "epoch", "time", "skipped_videos", "epoch_end",
           "motion_fallback_clips")


def well_formed(rec: dict[str, Any]) -> bool:
    """Whether a record has a whole-number ``step`` >= 0 and numbers where maest logs numbers (a line
    such as ``{"step": 1, "loss": null}`` is not one of its records, and is skipped, counted, by readers)."""
    step = rec.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return False
    return all(isinstance(v, (int, float)) and not isinstance(v, bool)
               for k, v in rec.items() if k in NUMERIC or k.startswith("val_"))


def _lines(path: Path, errors: str = "strict") -> list[str]:
    """The non-blank lines of ``path``."""
    return [line for line in path.read_text(errors=errors).splitlines() if line.strip()]


def _parsed(path: Path, errors: str = "strict"):
    """(line, its JSON value or ``_TORN``) for each non-blank line of ``path``."""
    for line in _lines(path, errors):
        try:
            yield line, json.loads(line)
        except json.JSONDecodeError:
            yield line, _TORN


def _summary_writer(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises it when the tensorboard package is missing
        raise RuntimeError("train.tensorboard=true needs the tensorboard package: pip install 'maest[tensorboard]' "
                           "(or set train.tensorboard=false; metrics.jsonl is written either way)") from None
    return SummaryWriter(log_dir=str(log_dir))


def _split_records(path: Path, step: int) -> tuple[list[str], int]:
    """The lines of ``path`` logged at or before ``step``, and how many others (later, or torn by a kill)."""
    keep, other = [], 0
    for line, rec in _parsed(path):
        try:
            early = int(rec.get("step", 0)) <= step
        except (ValueError, AttributeError, TypeError):  # a line cut off by a kill mid-write
            early = False
        if early:
            keep.append(line)
        else:
            other += 1
    return keep, other


def records_after(path: str | Path, step: int) -> int:
    """How many records of ``metrics.jsonl`` at ``path`` were logged after ``step`` (0 if there is no file)."""
    p = Path(path)
    return _split_records(p, step)[1] if p.is_file() else 0


def truncate_metrics(path: str | Path, step: int) -> int:
    """Drop the records logged after ``step`` (a resumed run logs those steps again, so each appears
    once), rewriting the file atomically; returns how many were dropped."""
    p = Path(path)
    if not p.is_file():
        return 0
    keep, dropped = _split_records(p, step)
    if dropped:
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, p)
    return dropped


def start_wandb(run_dir: Path, config: dict[str, Any] | None = None):
    """A wandb run named after ``run_dir`` (project ``$WANDB_PROJECT`` or "maest"), its files under
    ``run_dir/wandb``. Offline mode, entity and the rest come from wandb's own ``WANDB_*`` variables."""
    import os

    try:
        import wandb
    except ImportError:
        raise RuntimeError("train.wandb=true needs the wandb package: pip install wandb "
                           "(or set train.wandb=false)") from None
    return wandb.init(project=os.environ.get("WANDB_PROJECT", "maest"), name=run_dir.resolve().name,
                      dir=str(run_dir), config=config or {}, reinit=True)
