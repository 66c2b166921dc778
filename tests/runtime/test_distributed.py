"""Two processes with gloo on CPU, launched by torchrun, against one process on the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from maest.runs.metrics import read_metrics

WORKER = Path(__file__).with_name("dist_worker.py")


def _losses(out):
    return [r["loss"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]


def _run(args, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    _run([sys.executable, str(WORKER), str(out), "2", "ddp"])
    return out


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_match_one_process_on_the_same_global_batch(single, tmp_path, parallel):
    out = tmp_path / parallel
    out.mkdir()
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
          str(WORKER), str(out), "1", parallel])
    one, two = _losses(single), _losses(out)
    assert len(one) == len(two) == 6
    torch.testing.assert_close(torch.tensor(two), torch.tensor(one), rtol=1e-5, atol=1e-6)
    p0 = torch.load(out / "params-rank0.pt", weights_only=True)
    p1 = torch.load(out / "params-rank1.pt", weights_only=True)
    ref = torch.load(single / "params-rank0.pt", weights_only=True)
    for k in ref:
        a, b = p0[k], p1[k]
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)  # ranks stay identical
        torch.testing.assert_close(a, ref[k], rtol=1e-4, atol=1e-5, msg=k)
    ckpt = torch.load(out / "checkpoint-00000006.pt", weights_only=True)
    for k in ref:  # the checkpoint holds full (unsharded) weights
        torch.testing.assert_close(ckpt["model"][k], p0[k], rtol=0, atol=0, msg=k)
