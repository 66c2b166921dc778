"""Run by tests/runs/test_preempt.py as a real subprocess: ``maest pretrain`` through the CLI on in-memory
clips (RandomClips), printing ``step N`` to stdout after each logged step so the test knows when to send its
signal. ``PREEMPT_SLOW``: seconds each micro-batch sleeps (a slow step, for the second-signal test)."""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import maest.train.loop as loop  # noqa: E402
import maest.train.pretrain as pre  # noqa: E402
from maest.cli import main  # noqa: E402
from tests.conftest import RandomClips  # noqa: E402

real_log_step, real_run, real_loss = loop.log_step, pre.run, pre.mae_loss
SLOW = float(os.environ.get("PREEMPT_SLOW", "0"))


def log_step_and_tell(run, meter, step, lr, grad_norm):
    real_log_step(run, meter, step, lr, grad_norm)
    print(f"step {step}", flush=True)


def slow_loss(*args, **kwargs):
    time.sleep(SLOW)
    return real_loss(*args, **kwargs)


loop.log_step = log_step_and_tell
pre.run = lambda cfg: real_run(cfg, dataset=RandomClips(n=8))
pre.mae_loss = slow_loss

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
