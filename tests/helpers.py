"""Plain helpers shared by the tests of run folders, logs and one-line CLI messages (imported relatively:
``from ..helpers import QUIET, _cfg``)."""

from __future__ import annotations

from pathlib import Path

from maest.overrides import apply_overrides
from maest.runs.metrics import read_metrics
from maest.train.recipes import get_preset

QUIET = ["--set", "train.progress=false", "--set", "train.tensorboard=false"]


def _cfg(out, *extra):
    return apply_overrides(get_preset("tiny"), [f"train.output_dir={out}", "train.tensorboard=false",
                                                "train.progress=false", "train.log_every=1", *extra])


def _steps(out):
    return [r["step"] for r in read_metrics(Path(out) / "metrics.jsonl") if "loss" in r]


def _one_line_error(capsys, code, *needles):
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def assert_same_run(a, b, device: str = "cpu", msg: str = "") -> None:
    """Two runs' tensors (losses, weights) agree: bit for bit on the CPU, where every kernel is
    deterministic; on CUDA to a tolerance, since gather/scatter_add and SDPA's backward accumulate in a
    different order from run to run."""
    import torch

    tol = dict(rtol=0, atol=0) if device == "cpu" else dict(rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(a, b, msg=msg or None, **tol)
