"""benchmarks/distill_digits.py's smoke budget: a pixel teacher, a distilling and a pixel student per seed, each
fine-tuned and tested through the package; a second call only reads its cached runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from maest.runs import checkpoint as ckpt

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow
def test_distill_digits_smoke_runs_every_stage_and_reuses_its_runs(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(BENCH))
    import distill_digits

    threads = torch.get_num_threads()
    argv = ["distill_digits", "--out", str(tmp_path), "--budget", "smoke", "--threads", str(threads)]
    try:
        monkeypatch.setattr(sys, "argv", argv)
        distill_digits.main()
        res = json.loads((tmp_path / "results.json").read_text())
        assert [r["seed"] for r in res["rows"]] == [0, 1]
        for arm in ("distill", "pixels", "teacher"):
            assert 0 <= res["top1"][arm]["mean"] <= 100 and len(res["top1"][arm]["values"]) == 2
        student = next((tmp_path / "runs").glob("distill-s0-*"))
        target = ckpt.load_checkpoint(ckpt.list_checkpoints(student)[-1])["config"]["model"]["target"]
        teacher = next((tmp_path / "runs").glob("teacher-s0-*"))
        assert target["kind"] == "features" and target["teacher"].startswith(str(teacher))
        assert len(target["teacher_sha256"]) == 64 and target["teacher_dim"] == 96
        assert "fine-tune top-1" in capsys.readouterr().out
        stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*/done.json")}
        distill_digits.main()
        assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*/done.json")} == stamps  # cached
    finally:
        torch.set_num_threads(threads)
