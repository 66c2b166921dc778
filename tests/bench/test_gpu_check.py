"""scripts/gpu_check.sh, the 10-minute GPU check, on a machine without a GPU (CUDA hidden, so on a GPU
machine too): exit 0, one line saying what was skipped and why, the JSON written; and one check run in
its own process, as the GPU run does it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def test_without_a_gpu_it_exits_0_and_says_in_one_line_what_it_skipped(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(SCRIPTS / "gpu_check.sh"), "--out", str(out)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("gpu_check: skipped all 7 checks (flash-attention eligibility, ") and \
        "sees no CUDA GPU" in lines[0] and str(out) in lines[0]
    report = json.loads(out.read_text())
    assert set(report["skipped"]) == {"flash", "syncs", "bench", "trainer", "gpu_tests", "decode", "nccl"}


def test_a_check_runs_in_its_own_process_and_reports_json(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the child process sees no GPU, on a GPU machine too
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import gpu_check

    result = gpu_check._child("nccl", timeout=60)  # without 2 GPUs: says why, in the JSON
    assert "needs 2 or more" in result["skipped"] and result["seconds"] > 0
