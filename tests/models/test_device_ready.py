"""What a GPU run relies on in the models, checked on the CPU: models build on the ``meta`` device (no host
reads in construction), gradient checkpointing covers the decoder's blocks with the same outputs and
gradients, the fused q/k/v weight is kept between forwards without gradients (same numbers), and the patch
embedding casts only the visible patches."""

from __future__ import annotations

import contextlib

import pytest
import torch

from maest.models import create_model, model_config
from maest.models.layers import Attention

NAMES = ["mae_vit_tiny_test", "mae_vit_base_patch16", "vit_tiny_test", "videomae_vit_base_patch16"]


@pytest.mark.parametrize("name", NAMES)
def test_models_build_on_the_meta_device(name):
    cfg = model_config(name)
    with torch.device("meta"):
        model = cfg.build()
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_a_classifier_with_drop_path_builds_on_meta_with_the_cpu_rates():
    from maest.models.encoder import VideoEncoder

    cfg = model_config("vit_tiny_test").encoder
    with torch.device("meta"):
        meta = VideoEncoder(cfg, drop_path_rate=0.1)
    cpu = VideoEncoder(cfg, drop_path_rate=0.1)
    assert [b.drop_path.p for b in meta.blocks] == [b.drop_path.p for b in cpu.blocks] != [0.0] * len(cpu.blocks)


def _step(model, video, noise):
    out = model(video, noise=noise)
    loss = out.pred.float().pow(2).mean()
    loss.backward()
    return out.pred.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_decoder_checkpointing_gives_the_same_outputs_and_gradients_and_saves_less(video):
    torch.manual_seed(0)
    model = create_model("mae_vit_tiny_test")
    noise = torch.rand(video.shape[0], model.num_patches)
    plain_pred, plain_grads = _step(model, video, noise)
    model.zero_grad(set_to_none=True)
    model.grad_checkpointing = True
    calls = []
    for blk in model.decoder_blocks:  # each decoder block runs twice: forward, and again in backward
        blk.register_forward_pre_hook(lambda *a: calls.append(1))
    ckpt_pred, ckpt_grads = _step(model, video, noise)
    assert len(calls) == 2 * len(model.decoder_blocks)
    torch.testing.assert_close(ckpt_pred, plain_pred, rtol=0, atol=0)
    assert plain_grads.keys() == ckpt_grads.keys()
    for k in plain_grads:
        torch.testing.assert_close(ckpt_grads[k], plain_grads[k], rtol=0, atol=0, msg=k)


def _saved_bytes(model, video, noise) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(video, noise=noise).pred.sum().backward()
    return total


def test_checkpointing_the_decoder_saves_activations(video):
    model = create_model("mae_vit_tiny_test")
    noise = torch.rand(video.shape[0], model.num_patches)
    plain = _saved_bytes(model, video, noise)
    model.grad_checkpointing = True
    both = _saved_bytes(model, video, noise)
    enc_only = model.run_blocks  # the encoder alone checkpointed: what train.grad_checkpointing did before

    def encoder_only(x, blocks=None):
        if blocks is None:
            return enc_only(x)
        for blk in blocks:
            x = blk(x)
        return x

    model.run_blocks = encoder_only
    encoder = _saved_bytes(model, video, noise)
    assert both < encoder < plain


def _attn(qkv_bias="qkv"):
    torch.manual_seed(0)
    return Attention(16, 4, qkv_bias=qkv_bias).eval()


@pytest.mark.parametrize("qkv_bias", ["qkv", "qv", "none"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_fused_qkv_weight_is_kept_without_gradients_with_the_same_numbers(qkv_bias, precision, monkeypatch):
    attn, x = _attn(qkv_bias), torch.randn(2, 6, 16)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext
    with ctx():
        fresh = attn(x).detach()  # with gradients: concatenated per forward, nothing kept
    assert attn._qkv_cache is None
    concat = []
    real = Attention._concat_qkv
    monkeypatch.setattr(Attention, "_concat_qkv", lambda self: concat.append(1) or real(self))
    with torch.no_grad(), ctx():
        first, second = attn(x), attn(x)
    assert len(concat) == 1  # the second forward reused the first's fused (and cast) weight
    torch.testing.assert_close(first, fresh, rtol=0, atol=0)
    torch.testing.assert_close(second, fresh, rtol=0, atol=0)


def test_the_kept_qkv_weight_follows_weight_changes_and_is_dropped_in_training():
    attn, x = _attn(), torch.randn(2, 6, 16)
    with torch.no_grad():
        attn(x)
        attn.k.weight.mul_(2)  # an optimizer step or a load_state_dict writes in place
        changed = attn(x)
    attn._qkv_cache = None
    with torch.no_grad():
        torch.testing.assert_close(changed, attn(x), rtol=0, atol=0)
    attn.train()
    attn(x).sum().backward()
    assert attn._qkv_cache is None and attn.q.weight.grad is not None


def test_patch_embedding_casts_only_the_visible_patches_with_the_same_values(video):
    model = create_model("mae_vit_tiny_test")
    pe = model.patch_embed
    ids = torch.argsort(torch.rand(video.shape[0], model.num_patches), dim=1)[:, :5]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        kept = pe(video, ids)
        full = pe(video.to(torch.bfloat16))  # every patch from a clip cast first (the former order)
    want = torch.gather(full, 1, ids.unsqueeze(-1).expand(-1, -1, full.shape[-1]))
    torch.testing.assert_close(kept, want, rtol=0, atol=0)
