"""Metrics sinks for the main process: a JSONL file (one record per log event), TensorBoard and,
optionally, Weights & Biases (``train.wandb=true``; ``WANDB_MODE=offline`` and the other ``WANDB_*``
variables are honoured by wandb itself)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class MetricsLogger:
    """Writes ``{"step": ..., "time": ..., **metrics}`` lines to ``metrics.jsonl`` and scalars to
    TensorBoard under ``run_dir/tb``, and to a wandb run (same metric names and steps) when ``wandb``.
    Inactive (no files) when ``enabled`` is False (non-zero ranks). ``config`` is the run's config
    dict, recorded by wandb."""

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
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(run_dir / "tb"))

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
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


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
