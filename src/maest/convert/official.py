"""Official MAE-ST checkpoints (facebookresearch/mae_st ``{"model": ...}``; SlowFast ``{"model_state": ...}``)
use maest's own parameter names; fine-tuning checkpoints may name the head ``head.projection``."""

from __future__ import annotations

import math
from typing import Any

import torch

from maest.convert.accounting import ConversionError, KeyMap
from maest.convert.spec import mlp_ratio


def _depth(state: dict[str, torch.Tensor], prefix: str) -> int:
    return len({k.split(".")[1] for k in state if k.startswith(prefix + ".")})


def _heads(width: int, given: int | None, cfg_width: int, cfg_heads: int, model_name: str, flag: str) -> int:
    if given is not None:
        if given < 1 or width % given:
            raise ConversionError(f"{flag} {given} does not divide the checkpoint's width {width}")
        return given
    if width != cfg_width:  # the named model's head count is about another width: not guessed
        raise ConversionError(f"the checkpoint is {width} wide but {model_name} is {cfg_width} wide, so its number of "
                              f"attention heads is unknown (the weights do not record it): pass {flag}")
    return cfg_heads


def from_official_state(state: dict[str, torch.Tensor], model_name: str | None, num_frames: int | None = None,
                        img_size: int | None = None, num_heads: int | None = None,
                        decoder_num_heads: int | None = None) -> tuple[Any, dict[str, torch.Tensor]]:
    """(maest model config, state dict) of an official MAE-ST state dict.

    Everything the weights record is read from them: patch sizes, width, depth, MLP ratio, biases,
    class token, positional table kind, decoder geometry, target frames per token, and the clip length
    and resolution when the positions are separable tables. The rest comes from the registered model
    ``model_name`` (LayerNorm eps, pooling), and the head counts from it only when its widths match the
    checkpoint's (else ``num_heads`` / ``decoder_num_heads`` are required).
    """
    from maest.models import model_config

    if model_name is None:
        raise ValueError("--model is required for official checkpoints, e.g. mae_vit_large_patch16 "
                         "(pre-training) or vit_large_patch16 (fine-tuned)")
    cfg = model_config(model_name)
    e = cfg.encoder
    if "patch_embed.proj.weight" not in state:
        raise ConversionError("official MAE-ST checkpoint has no patch_embed.proj.weight")
    D, C, u, p, _ = state["patch_embed.proj.weight"].shape
    depth = _depth(state, "blocks")
    e.num_heads = _heads(D, num_heads, e.embed_dim, e.num_heads, model_name, "--num-heads")
    e.embed_dim, e.in_chans, e.t_patch_size, e.patch_size, e.depth = D, C, u, p, depth
    if depth:
        e.mlp_ratio = mlp_ratio(state["blocks.0.mlp.fc1.weight"].shape[0], D)
        e.qkv_bias = "qkv" if "blocks.0.attn.q.bias" in state else "none"
    e.cls_embed = "cls_token" in state
    e.pos_embed_type = "separable" if "pos_embed_spatial" in state else "joint" if "pos_embed" in state else "sincos"
    if e.pooling == "cls" and not e.cls_embed:
        e.pooling = "mean"
    sizes = {}
    if "pos_embed_spatial" in state:
        sizes["img_size"] = math.isqrt(state["pos_embed_spatial"].shape[1]) * p
    if "pos_embed_temporal" in state:
        sizes["num_frames"] = state["pos_embed_temporal"].shape[1] * u
    for key, given in (("num_frames", num_frames), ("img_size", img_size)):
        flag = "--" + key.replace("_", "-")
        if key in sizes and given is not None and given != sizes[key]:
            raise ConversionError(f"{flag} {given} contradicts the checkpoint's positional tables, which record "
                                  f"{sizes[key]}; omit {flag}")
        setattr(e, key, sizes.get(key, given if given is not None else (16 if key == "num_frames" else 224)))
    if cfg.kind == "mae":
        if "decoder_pred.weight" not in state:
            raise ConversionError(f"{model_name} is a pre-training model but the checkpoint has no decoder "
                                  "(decoder_pred.weight); pass a classifier name such as vit_large_patch16")
        d = cfg.decoder
        Dd = state["decoder_embed.weight"].shape[0]
        d.num_heads = _heads(Dd, decoder_num_heads, d.embed_dim, d.num_heads, model_name, "--decoder-num-heads")
        d.embed_dim, d.depth = Dd, _depth(state, "decoder_blocks")
        if d.depth:
            d.mlp_ratio = mlp_ratio(state["decoder_blocks.0.mlp.fc1.weight"].shape[0], Dd)
            d.qkv_bias = "qkv" if "decoder_blocks.0.attn.q.bias" in state else "none"
        d.embed_bias = "decoder_embed.bias" in state
        d.t_pred_patch_size = state["decoder_pred.weight"].shape[0] // (p * p * C)
    else:
        if decoder_num_heads is not None:
            raise ConversionError("--decoder-num-heads: a classifier has no decoder")
        head = state.get("head.weight", state.get("head.projection.weight"))
        if head is None:
            raise ConversionError(f"{model_name} is a classifier but the checkpoint has no head (head.weight or "
                                  "head.projection.weight): it is pre-training weights; convert it with an mae_* "
                                  "model name, then fine-tune from it with `maest finetune --init`")
        cfg.num_classes, cfg.dropout, cfg.drop_path = head.shape[0], 0.0, 0.0
    cfg.validate()
    km = KeyMap(state, "official MAE-ST checkpoint")
    for key in list(km.source):
        km.move(key, key.replace("head.projection.", "head."))
    return cfg, km.consumed()
