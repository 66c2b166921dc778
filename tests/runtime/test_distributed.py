"""Two processes with gloo on CPU (on a GPU machine too), launched by torchrun, against one process on the same
global batch; DDP accumulation without redundant all-reduces and FSDP2's bf16 policy; NCCL on 2 GPUs (marked
gpu, skipped below 2 GPUs)."""

import json
import math
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


@pytest.fixture(scope="module")
def accumulation(tmp_path_factory):
    """tests/runtime/accum_worker.py's three runs in one 2-process gloo group (see there)."""
    out = tmp_path_factory.mktemp("accum")
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
          str(WORKER.with_name("accum_worker.py")), str(out)])
    return out, [json.loads((out / f"seen-rank{r}.json").read_text()) for r in (0, 1)]


def test_ddp_accumulation_all_reduces_once_per_step_with_the_same_weights(accumulation):
    out, ranks = accumulation
    for seen in ranks:
        assert seen["no_sync"]["steps"] == seen["sync"]["steps"] == 2
        # 2 steps x 2 micro-batches: the loop's no_sync leaves out the first micro-batch's reduction
        assert sum(seen["no_sync_reductions"]) == 2 and sum(seen["sync_reductions"]) == 4
        assert len(seen["sync_reductions"]) == 2 * len(seen["no_sync_reductions"])  # every bucket, twice
    quiet = torch.load(out / "no_sync" / "checkpoint-00000002.pt", weights_only=True)["model"]
    chatty = torch.load(out / "sync" / "checkpoint-00000002.pt", weights_only=True)["model"]
    for k in quiet:  # a sum of local gradients reduced once = the reduced gradients summed, to rounding
        torch.testing.assert_close(quiet[k], chatty[k], rtol=1e-5, atol=1e-6, msg=k)
    one, two = _losses(out / "no_sync"), _losses(out / "sync")
    torch.testing.assert_close(torch.tensor(one), torch.tensor(two), rtol=1e-5, atol=1e-6)


def test_fsdp_in_bf16_gathers_bf16_weights_and_keeps_the_root_gathered(accumulation):
    out, ranks = accumulation
    for seen in ranks:
        calls = seen["fully_shard"]
        blocks, root = calls[:-1], calls[-1]
        assert root["module"] == "MaskedAutoencoderViT" and len(blocks) == 2 + 1  # tiny: 2 encoder, 1 decoder
        assert root["reshard_after_forward"] is False and root["cast_forward_inputs"] is False  # noise stays fp32
        for c in calls:
            assert (c["param_dtype"], c["reduce_dtype"]) == ("torch.bfloat16", "torch.float32")
        assert all(b["reshard_after_forward"] is True for b in blocks)
        assert seen["forward_dtypes"] == ["torch.bfloat16"]  # what a block computes with
        assert seen["fsdp_bf16"]["steps"] == 2 and seen["fsdp_bf16"]["precision"] == "bf16"
    losses = _losses(out / "fsdp_bf16")
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    state = torch.load(out / "fsdp_bf16" / "checkpoint-00000002.pt", weights_only=True)["model"]
    assert {v.dtype for v in state.values()} == {torch.float32}  # the weights themselves stay fp32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_gpus_with_nccl_match_one_process(single, tmp_path, parallel):
    out = tmp_path / parallel
    out.mkdir()
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
          str(WORKER), str(out), "1", parallel, "cuda"])
    one, two = _losses(single), _losses(out)
    assert len(one) == len(two) == 6
    # CUDA kernels are not the CPU's, nor bit-exact run to run: a tolerance, not the gloo test's
    torch.testing.assert_close(torch.tensor(two), torch.tensor(one), rtol=1e-2, atol=1e-3)
