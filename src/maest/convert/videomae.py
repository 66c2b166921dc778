"""VideoMAE / VideoMAEv2 checkpoints (MCG-NJU, OpenGVLab): fused ``attn.qkv.weight`` with
``attn.q_bias`` / ``attn.v_bias`` (no key bias), fixed sinusoid positions (not stored), pre-training
keys under ``encoder.`` / ``decoder.`` with ``encoder_to_decoder`` (no bias) and ``decoder.head``.

The key bias is set to zero: q.(k + b) shifts every logit of a query by the same q.b, which softmax
ignores, so this is exact (and its gradient is exactly zero, so it stays zero in training)."""

from __future__ import annotations

import torch
from torch import nn

from maest.checkpoint import model_state
from maest.convert.accounting import ConversionError, KeyMap

_BLOCK = {"norm1": "norm1", "norm2": "norm2", "attn.proj": "attn.proj", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}


def _block(km: KeyMap, src: str, dst: str) -> None:
    for a, b in _BLOCK.items():
        for w in ("weight", "bias"):
            km.move(f"{src}.{a}.{w}", f"{dst}.{b}.{w}")
    q, k, v = km.take(f"{src}.attn.qkv.weight").chunk(3)
    km.put(f"{dst}.attn.q.weight", q)
    km.put(f"{dst}.attn.k.weight", k)
    km.put(f"{dst}.attn.v.weight", v)
    if km.has(f"{src}.attn.q_bias"):
        km.move(f"{src}.attn.q_bias", f"{dst}.attn.q.bias")
        km.move(f"{src}.attn.v_bias", f"{dst}.attn.v.bias")
        km.put(f"{dst}.attn.k.bias", torch.zeros_like(q[:, 0]))
    elif km.has(f"{src}.attn.qkv.bias"):  # SlowFast-style full bias
        qb, kb, vb = km.take(f"{src}.attn.qkv.bias").chunk(3)
        km.put(f"{dst}.attn.q.bias", qb)
        km.put(f"{dst}.attn.k.bias", kb)
        km.put(f"{dst}.attn.v.bias", vb)
    for gamma in ("gamma_1", "gamma_2"):
        if km.has(f"{src}.{gamma}"):
            raise ConversionError(f"{src}.{gamma}: layer-scale checkpoints are not supported yet")


def from_videomae(ckpt: dict, model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict for ``model`` from a VideoMAE pre-training (``encoder.*``/``decoder.*``) or
    fine-tuning (flat, ``fc_norm`` + ``head``) checkpoint."""
    km = KeyMap(model_state(ckpt), "VideoMAE checkpoint")
    target = model.state_dict()
    enc = "encoder." if any(k.startswith("encoder.") for k in km.source) else ""
    km.move(f"{enc}patch_embed.proj.weight", "patch_embed.proj.weight")
    km.move(f"{enc}patch_embed.proj.bias", "patch_embed.proj.bias")
    depth = len({k.split(".")[2 if enc else 1] for k in km.source if k.startswith(f"{enc}blocks.")})
    for i in range(depth):
        _block(km, f"{enc}blocks.{i}", f"blocks.{i}")
    if km.has(f"{enc}norm.weight"):
        for w in ("weight", "bias"):
            km.move(f"{enc}norm.{w}", f"norm.{w}")
    if km.has("fc_norm.weight"):  # fine-tuned: the post-pool norm is maest's ``norm``
        for w in ("weight", "bias"):
            km.move(f"fc_norm.{w}", f"norm.{w}")
    for w in ("weight", "bias"):
        if km.has(f"head.{w}"):
            km.move(f"head.{w}", f"head.{w}")
    if enc:
        km.move("encoder_to_decoder.weight", "decoder_embed.weight")
        km.put("decoder_embed.bias", torch.zeros(km.out["decoder_embed.weight"].shape[0]))
        km.move("mask_token", "mask_token")
        ddepth = len({k.split(".")[2] for k in km.source if k.startswith("decoder.blocks.")})
        for i in range(ddepth):
            _block(km, f"decoder.blocks.{i}", f"decoder_blocks.{i}")
        for w in ("weight", "bias"):
            km.move(f"decoder.norm.{w}", f"decoder_norm.{w}")
            km.move(f"decoder.head.{w}", f"decoder_pred.{w}")
    km.skip("pos_embed")  # a stored copy of the fixed sinusoid (mmaction2, some forks): recomputed
    return km.finish(target)
