"""Marked ``gpu``: run only where CUDA is (skipped elsewhere; ``scripts/gpu_check.sh`` runs them). What the
CPU tests can only emulate: flash attention takes maest's attention, RandAugment computes on GPU frames
as on the CPU, the trainer makes no host synchronisation between log steps, the deferred non-finite guard,
decoder checkpointing, and a resumed run that ends where an uninterrupted one does (to a tolerance)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from maest import runtime
from maest.runs import checkpoint as ckpt
from maest.runs.metrics import read_metrics

from ..conftest import RandomClips
from ..helpers import _cfg, assert_same_run

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("no_curves")]
CUDA = "cuda:0"


def test_flash_attention_takes_maest_attention_in_bf16():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from maest.models.layers import Attention

    attn = Attention(768, 12).to(CUDA)
    x = torch.randn(2, 1569, 768, device=CUDA, requires_grad=True)  # ViT-B, 16 x 224 x 224, class token
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]), torch.autocast("cuda", dtype=torch.bfloat16):
        attn(x).float().sum().backward()  # raises if flash cannot take these q, k, v
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("op", ["rotate", "shear_x", "translate_y", "sharpness", "equalize", "autocontrast",
                                "posterize", "solarize", "color", "contrast", "brightness"])
def test_randaugment_on_gpu_frames_matches_the_cpu(op, monkeypatch):
    from maest.data import randaugment as ra

    # full fp32 (an fp32 run elsewhere in this process may have turned TF32 on: see runtime.allow_tf32)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)

    frames = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255
    torch.manual_seed(1)
    cpu = ra.OPS[op](frames, 6.0)
    torch.manual_seed(1)  # the same host draws (sign, magnitude)
    gpu = ra.OPS[op](frames.to(CUDA), 6.0)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=0.05)


def test_the_trainer_makes_no_host_sync_between_log_steps(tmp_path, monkeypatch):
    import maest.train.pretrain as pre
    from maest.train import loop

    starts = []
    real_set_lr = loop.set_lr
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        def set_lr(*args):
            starts.append(len([w for w in caught if "synchroniz" in str(w.message)]))
            return real_set_lr(*args)

        monkeypatch.setattr(loop, "set_lr", set_lr)
        torch.cuda.set_sync_debug_mode("warn")
        try:
            pre.run(_cfg(tmp_path, "train.device=cuda", "train.precision=bf16", "train.max_steps=6",
                         "train.log_every=100", "train.epochs=10", "data.num_workers=0", "optim.clip_grad=1.0"),
                    dataset=RandomClips(n=16))
        finally:
            torch.cuda.set_sync_debug_mode(0)
    # from the start of step 1 (after warm-up) to the start of the last step, which logs: nothing
    assert len(starts) == 6 and starts[-1] - starts[1] == 0, [str(w.message)[:80] for w in caught]


def test_the_guard_is_deferred_on_a_gpu_and_names_the_bad_step(tmp_path):
    from maest.train.loop import NonFiniteGuard

    guard = NonFiniteGuard(runtime.DistInfo(device=CUDA), tmp_path)
    assert not guard.eager
    for step, value in enumerate([1.0, math.nan, 2.0]):
        guard.watch(torch.tensor(value, device=CUDA), step, 0)
    with pytest.raises(FloatingPointError, match="at step 1 "):
        guard.check()


def test_decoder_checkpointing_on_the_gpu():
    from maest.models import create_model

    torch.manual_seed(0)
    model = create_model("mae_vit_tiny_test").to(CUDA)
    video = torch.randn(2, 3, 4, 32, 32, device=CUDA)
    noise = torch.rand(2, model.num_patches, device=CUDA)
    grads = []
    for flag in (False, True):
        model.grad_checkpointing = flag
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pred = model(video, noise=noise).pred
        pred.float().pow(2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert_same_run(grads[1], grads[0], device=CUDA)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    gpu = ["train.device=cuda", "train.precision=bf16", "data.num_workers=0", "train.epochs=2"]
    full = runtime_run(tmp_path / "full", *gpu, "train.max_steps=4")
    runtime_run(tmp_path / "split", *gpu, "train.max_steps=2", "train.save_every_steps=2")
    resumed = runtime_run(tmp_path / "split", *gpu, "train.max_steps=4", "train.resume=auto")
    a, b = (torch.tensor([r["loss"] for r in read_metrics(p / "metrics.jsonl") if "loss" in r])
            for p in (tmp_path / "full", tmp_path / "split"))
    assert_same_run(b, a, device=CUDA)
    wa = ckpt.model_state(ckpt.load_checkpoint(full["checkpoint"]))
    wb = ckpt.model_state(ckpt.load_checkpoint(resumed["checkpoint"]))
    for k in wa:
        assert_same_run(wb[k], wa[k], device=CUDA, msg=k)


def runtime_run(out, *extra):
    from maest.train.pretrain import run

    return run(_cfg(out, *extra), dataset=RandomClips())
