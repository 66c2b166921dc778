"""Preemption: SIGTERM (what clusters and schedulers send before they kill a job) and SIGINT (Ctrl-C)
ask a training run to stop cleanly. While :class:`StopRequest` is installed, the first signal is only
recorded: the loop finishes the optimizer step it is in, saves a checkpoint it can resume from exactly,
writes its curves, shuts its loader workers down and raises :class:`Stopped`, which the CLI prints as
one line and turns into exit code 128 + the signal (130 for SIGINT, 143 for SIGTERM, as a shell reports
a process the signal killed). A second signal exits at once (the loader workers are killed with it).

Handlers can only be installed from the main thread; elsewhere (a run started in a thread) signals keep
their usual effect.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(Exception):
    """A run stopped on a signal after saving a checkpoint to resume from."""

    def __init__(self, signum: int, step: int, checkpoint: str | None) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = 128 + signum
        saved = f"saved {checkpoint}" if checkpoint else "nothing to save yet"
        super().__init__(f"stopped at step {step} on {signal.Signals(signum).name} ({saved}); resume with --resume")


class StopRequest:
    """Catches SIGTERM and SIGINT while a run trains (``with StopRequest() as stop: ... stop.signum``)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:  # the second signal: stop now, workers included
            os.write(2, f"\nmaest: second {name}: exiting at once without saving\n".encode())
            for child in multiprocessing.active_children():
                child.kill()
            os._exit(128 + signum)
        self.signum = signum
        os.write(2, f"\nmaest: {name} received: stopping after the current step and saving a checkpoint "
                    f"(send {name} again to exit at once)\n".encode())
