"""Issue 13, logs: piped output gets plain lines, not a progress bar; every epoch is logged; TensorBoard is
optional, used when installed and named in one line when asked for but missing."""

from __future__ import annotations

import logging
import sys

import pytest

from maest.runs.metrics import read_metrics
from maest.train.pretrain import run

from ..conftest import RandomClips
from ..helpers import _cfg

pytestmark = pytest.mark.usefixtures("no_curves")


def test_piped_output_gets_plain_lines_not_a_progress_bar(tmp_path, capfd, caplog):
    with caplog.at_level(logging.INFO, logger="maest"):
        run(_cfg(tmp_path, "train.progress=true", "train.log_every=2", "train.epochs=2"), dataset=RandomClips())
    err = capfd.readouterr().err
    assert "\r" not in err and "it/s" not in err and "step/s" not in err
    lines = [r.getMessage() for r in caplog.records]
    steps = [m for m in lines if m.startswith("pretrain step ")]
    assert [m.split()[2] for m in steps] == ["2/8:", "4/8:", "6/8:", "8/8:"]
    assert all("loss" in m and "lr" in m and "clips/s" in m and "ETA" in m for m in steps)
    assert sum(m.startswith("epoch ") for m in lines) == 2


def test_progress_false_still_logs_each_epoch(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="maest"):
        run(_cfg(tmp_path, "train.progress=false", "train.epochs=2"), dataset=RandomClips())
    lines = [r.getMessage() for r in caplog.records]
    assert [m.split(":")[0] for m in lines if m.startswith("epoch ")] == ["epoch 1/2", "epoch 2/2"]
    assert not any(m.startswith("pretrain step ") for m in lines)


def test_missing_tensorboard_is_one_clear_line(tmp_path, monkeypatch):
    from maest.runs.metrics import MetricsLogger

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(RuntimeError, match=r"train.tensorboard=true needs .*maest\[tensorboard\]"):
        MetricsLogger(tmp_path, tensorboard=True)
    MetricsLogger(tmp_path, tensorboard=False).close()


def test_tensorboard_is_used_when_installed_unless_turned_off(tmp_path):
    pytest.importorskip("tensorboard")
    from maest.runs.metrics import MetricsLogger

    for setting, expect in ((None, True), (True, True), (False, False)):
        run_dir = tmp_path / str(setting)
        logger = MetricsLogger(run_dir, tensorboard=setting)
        logger.log(1, loss=0.5)
        logger.close()
        assert bool(list(run_dir.glob("tb/events.out.tfevents.*"))) == expect


def test_tensorboard_default_runs_without_the_package(tmp_path, monkeypatch):
    import importlib.util

    from maest.runs.metrics import MetricsLogger

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    logger = MetricsLogger(tmp_path, tensorboard=None)
    logger.log(1, loss=0.5)
    logger.close()
    assert not (tmp_path / "tb").exists() and read_metrics(tmp_path / "metrics.jsonl")[0]["loss"] == 0.5
