"""Progress as a person watching a run wants it: a tqdm bar on a terminal, plain lines in a log file
or pipe, nothing on the non-main processes. One home for every bar of the package: the training loop's
(:func:`training_progress`) and the counters of the tools (:func:`counter`)."""

from __future__ import annotations

import datetime
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

log = logging.getLogger("maest")


def counter(total: int | None, desc: str, unit: str, enabled: bool = True) -> Any:
    """A tqdm counter (``update(n)``, ``close()``) when ``enabled`` and stderr is a terminal, else a no-op."""
    if not enabled:
        return Silent()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, disable=None)


def iterate(items: Iterable, desc: str, unit: str, enabled: bool = True) -> Iterator:
    """``items``, with a tqdm bar when ``enabled`` and stderr is a terminal."""
    if not enabled:
        return iter(items)
    from tqdm.auto import tqdm

    return iter(tqdm(items, desc=desc, unit=unit, disable=None))


class Silent:
    """Progress reporting of the non-main processes: nothing."""

    def update(self, n: int) -> None: ...
    def report(self, step: int, rec: dict[str, float]) -> None: ...
    def epoch_end(self, epoch: int, epochs: int, step: int) -> None: ...
    def close(self) -> None: ...


class EpochLines(Silent):
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


class StepLines(EpochLines):
    """Plain lines for logs that are not a terminal (a pipe, a file): every ``log_every`` steps and per epoch."""

    def report(self, step: int, rec: dict[str, float]) -> None:
        super().report(step, rec)
        elapsed, done = time.perf_counter() - self.start, step - self.initial
        eta = datetime.timedelta(seconds=round(elapsed / done * (self.total - step))) if done > 0 else "?"
        log.info("%s step %d/%d: loss %.4f, lr %.3g, %.1f clips/s, ETA %s", self.desc, step, self.total, rec["loss"],
                 rec["lr"], rec["clips_per_s"], eta)


class Bar(EpochLines):
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


def training_progress(is_main: bool, bar: bool, total: int, initial: int, desc: str) -> Silent:
    """A tqdm bar on a terminal, plain step lines elsewhere, epoch lines only without ``bar``."""
    if not is_main:
        return Silent()
    if not bar:
        return EpochLines(total, initial, desc)
    return (Bar if sys.stderr.isatty() else StepLines)(total, initial, desc)
