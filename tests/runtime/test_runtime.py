"""The GPU paths of maest.runtime, on the CPU with CUDA faked: the local rank checked against the GPUs,
NCCL bound to the process's GPU, TF32 for fp32 on Ampere and newer, and FSDP2's policies."""

from __future__ import annotations

import pytest
import torch

from maest import runtime


@pytest.fixture
def fake_cuda(monkeypatch):
    """A machine with one CUDA device as far as runtime.init can tell."""
    set_to = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", set_to.append)
    return set_to


def test_a_local_rank_without_a_gpu_is_one_line(fake_cuda, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(RuntimeError) as err:
        runtime.init("auto")
    msg = str(err.value)
    assert "\n" not in msg and "local rank 1 has no GPU" in msg and "--nproc_per_node=1" in msg
    assert fake_cuda == []  # refused before touching the device


def test_nccl_is_bound_to_the_process_gpu(fake_cuda, monkeypatch):
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kw: calls.append(kw))
    info = runtime.init("cuda")
    assert info.device == "cuda:0" and fake_cuda == ["cuda:0"]
    assert calls == [{"backend": "nccl", "device_id": torch.device("cuda:0")}]


def test_gloo_on_the_cpu_has_no_device_id(monkeypatch):
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kw: calls.append(kw))
    assert runtime.init("cpu").device == "cpu" and calls == [{"backend": "gloo"}]


@pytest.mark.parametrize(("capability", "precision", "want"), [
    ((8, 0), "fp32", True), ((9, 0), "fp32", True), ((7, 0), "fp32", False), ((8, 0), "bf16", False)])
def test_tf32_for_fp32_on_ampere_and_newer(monkeypatch, capability, precision, want):
    seen = []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch, "set_float32_matmul_precision", seen.append)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", torch.backends.cudnn.allow_tf32)  # restored after
    assert runtime.resolve_precision(precision, "cuda:0") == precision
    assert seen == (["high"] if want else [])


def test_no_tf32_on_the_cpu(monkeypatch):
    seen = []
    monkeypatch.setattr(torch, "set_float32_matmul_precision", seen.append)
    assert runtime.resolve_precision("fp32", "cpu") == "fp32" and not runtime.allow_tf32("cpu") and seen == []


def test_auto_precision_on_a_gpu_without_bf16_is_tf32(monkeypatch):
    seen = []
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 6))
    monkeypatch.setattr(torch, "set_float32_matmul_precision", seen.append)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", torch.backends.cudnn.allow_tf32)
    assert runtime.resolve_precision("auto", "cuda:0") == "fp32" and seen == ["high"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fsdp_policies(monkeypatch, precision):
    import torch.distributed.device_mesh as device_mesh
    import torch.distributed.fsdp as fsdp

    from maest.models import create_model

    calls = []
    monkeypatch.setattr(device_mesh, "init_device_mesh", lambda kind, shape: ("mesh", kind, shape))
    monkeypatch.setattr(fsdp, "fully_shard", lambda module, **kw: calls.append((type(module).__name__, kw)))
    runtime.shard_fsdp(create_model("mae_vit_tiny_test"), runtime.DistInfo(world_size=2), precision)
    *blocks, (root, kw) = calls
    assert root == "MaskedAutoencoderViT" and kw["reshard_after_forward"] is False and len(blocks) == 3
    low = torch.bfloat16 if precision == "bf16" else None
    for _, k in calls:
        assert k["mesh"] == ("mesh", "cpu", (2,))
        assert k["mp_policy"].param_dtype is low
        assert k["mp_policy"].reduce_dtype is (torch.float32 if low else None)
    assert kw["mp_policy"].cast_forward_inputs is (precision != "bf16")  # bf16 never rounds the masking noise


def test_no_sync_is_nothing_outside_ddp():
    import contextlib

    model = torch.nn.Linear(2, 2)
    assert isinstance(runtime.no_sync(model, sync=False), contextlib.nullcontext)
