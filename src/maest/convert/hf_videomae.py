"""Hugging Face ``transformers`` VideoMAE (``VideoMAEModel``, ``VideoMAEForPreTraining``,
``VideoMAEForVideoClassification``) to maest and back.

HF VideoMAE is the VideoMAE architecture: fixed 1-D sinusoid positions, no class token, query and
value biases only, inputs laid out (B, T, C, H, W). Its blocks use ``layer_norm_eps`` (default
1e-12) while ``fc_norm`` and the decoder's final norm use PyTorch's 1e-5; the converted model keeps
all three. v4 checkpoints name the biases ``q_bias``/``v_bias``, v5 ``query.bias``/``value.bias``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maest.convert.accounting import ConversionError, KeyMap

_LAYER = {"attention.output.dense": "attn.proj", "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
          "layernorm_before": "norm1", "layernorm_after": "norm2"}


def model_kwargs(config: dict[str, Any], task: str) -> dict[str, Any]:
    """maest constructor arguments equivalent to an HF ``VideoMAEConfig`` (as a dict).

    Args:
        task: "pretrain" (MAE with decoder), "encoder" or "classify".
    """
    c = config
    kw = dict(img_size=c["image_size"], patch_size=c["patch_size"], num_frames=c["num_frames"],
              t_patch_size=c["tubelet_size"], embed_dim=c["hidden_size"],
              depth=c["num_hidden_layers"], num_heads=c["num_attention_heads"],
              mlp_ratio=c["intermediate_size"] / c["hidden_size"], qkv_bias=c.get("qkv_bias", True),
              norm_eps=c.get("layer_norm_eps", 1e-12), pos_embed_type="sincos", cls_embed=False)
    if c.get("num_channels", 3) != 3:
        raise ConversionError(f"num_channels={c['num_channels']}: only RGB models are supported")
    if c.get("hidden_act", "gelu") != "gelu":
        raise ConversionError(f"hidden_act={c['hidden_act']!r}: only exact GELU is supported")
    if task == "pretrain":
        if c["decoder_intermediate_size"] / c["decoder_hidden_size"] != kw["mlp_ratio"]:
            raise ConversionError("decoder and encoder MLP ratios differ; maest shares one mlp_ratio")
        kw.update(decoder_embed_dim=c["decoder_hidden_size"], decoder_depth=c["decoder_num_hidden_layers"],
                  decoder_num_heads=c["decoder_num_attention_heads"], pred_t_dim=c["num_frames"],
                  mask_strategy="tube", decoder_norm_eps=1e-5)
    elif task == "classify":
        kw.update(num_classes=len(c.get("id2label") or {}) or c.get("num_labels", 2), global_pool="avg",
                  final_norm_eps=1e-5)
    return kw


def _layer(km: KeyMap, src: str, dst: str) -> None:
    for a, b in _LAYER.items():
        for w in ("weight", "bias"):
            km.move(f"{src}.{a}.{w}", f"{dst}.{b}.{w}")
    att = f"{src}.attention.attention"
    for name, short in (("query", "q"), ("key", "k"), ("value", "v")):
        km.move(f"{att}.{name}.weight", f"{dst}.attn.{short}.weight")
        if km.has(f"{att}.{name}.bias"):
            km.move(f"{att}.{name}.bias", f"{dst}.attn.{short}.bias")
        elif km.has(f"{att}.{short}_bias"):  # transformers v4
            km.move(f"{att}.{short}_bias", f"{dst}.attn.{short}.bias")
        elif name == "key":  # no key bias: zero is exact (softmax ignores a per-query constant)
            km.put(f"{dst}.attn.k.bias", torch.zeros(km.out[f"{dst}.attn.k.weight"].shape[0]))


def from_hf_videomae(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict for ``model`` (built with :func:`model_kwargs`) from an HF VideoMAE state dict."""
    km = KeyMap(state, "Hugging Face VideoMAE state dict")
    target = model.state_dict()
    p = "videomae." if any(k.startswith("videomae.") for k in state) else ""
    km.move(f"{p}embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight")
    km.move(f"{p}embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias")
    depth = len({k.split(".")[3 if p else 2] for k in state if k.startswith(f"{p}encoder.layer.")})
    for i in range(depth):
        _layer(km, f"{p}encoder.layer.{i}", f"blocks.{i}")
    for src in (f"{p}layernorm", "fc_norm"):  # the per-token final norm, or the post-pool norm
        if km.has(f"{src}.weight"):
            km.move(f"{src}.weight", "norm.weight")
            km.move(f"{src}.bias", "norm.bias")
    if "norm.weight" not in km.out and "norm.weight" in target:
        # VideoMAEModel with mean pooling has no final norm; maest's is then unused by forward_features
        km.put("norm.weight", torch.ones_like(target["norm.weight"]))
        km.put("norm.bias", torch.zeros_like(target["norm.bias"]))
    if km.has("classifier.weight"):
        km.move("classifier.weight", "head.weight")
        km.move("classifier.bias", "head.bias")
    if km.has("encoder_to_decoder.weight"):
        km.move("encoder_to_decoder.weight", "decoder_embed.weight")
        km.put("decoder_embed.bias", torch.zeros(km.out["decoder_embed.weight"].shape[0]))
        km.move("mask_token", "mask_token")
        ddepth = len({k.split(".")[2] for k in state if k.startswith("decoder.decoder_layers.")})
        for i in range(ddepth):
            _layer(km, f"decoder.decoder_layers.{i}", f"decoder_blocks.{i}")
        for w in ("weight", "bias"):
            km.move(f"decoder.norm.{w}", f"decoder_norm.{w}")
            km.move(f"decoder.head.{w}", f"decoder_pred.{w}")
    km.skip(f"{p}embeddings.position_embeddings")  # the fixed sinusoid, recomputed
    return km.finish(target)


def export_hf_videomae(model: nn.Module, out_dir: str | Path) -> Path:
    """Write a maest MAE with the VideoMAE architecture (sin-cos positions, no class token, zero key
    bias, per-token targets) as an HF ``VideoMAEForPreTraining`` folder (config.json + safetensors)."""
    from maest.checkpoint import export_safetensors

    why = []
    if model.pos_embed_type != "sincos":
        why.append(f"positional embeddings are {model.pos_embed_type!r} (HF VideoMAE only has a fixed sinusoid)")
    if model.cls_embed:
        why.append("the model has a class token (HF VideoMAE has none)")
    if model.t_pred_patch_size != model.patch_embed.t_patch_size:
        why.append("the decoder predicts a subset of frames (HF predicts every frame of a tube)")
    sd = model.state_dict()
    for i in range(len(model.blocks)):
        if sd[f"blocks.{i}.attn.k.bias"].abs().max() > 0:
            why.append("key biases are non-zero (HF VideoMAE has none)")
            break
    if sd["decoder_embed.bias"].abs().max() > 0:
        why.append("decoder_embed has a bias (HF encoder_to_decoder has none)")
    if why:
        raise ConversionError("cannot export to Hugging Face VideoMAE: " + "; ".join(why))
    out: dict[str, torch.Tensor] = {}

    def layer(src: str, dst: str) -> None:
        for b, a in ((v, k) for k, v in _LAYER.items()):
            for w in ("weight", "bias"):
                out[f"{dst}.{a}.{w}"] = sd[f"{src}.{b}.{w}"]
        att = f"{dst}.attention.attention"
        for name, short in (("query", "q"), ("key", "k"), ("value", "v")):
            out[f"{att}.{name}.weight"] = sd[f"{src}.attn.{short}.weight"]
            if short != "k":
                out[f"{att}.{name}.bias"] = sd[f"{src}.attn.{short}.bias"]

    out["videomae.embeddings.patch_embeddings.projection.weight"] = sd["patch_embed.proj.weight"]
    out["videomae.embeddings.patch_embeddings.projection.bias"] = sd["patch_embed.proj.bias"]
    for i in range(len(model.blocks)):
        layer(f"blocks.{i}", f"videomae.encoder.layer.{i}")
    out["videomae.layernorm.weight"], out["videomae.layernorm.bias"] = sd["norm.weight"], sd["norm.bias"]
    out["encoder_to_decoder.weight"] = sd["decoder_embed.weight"]
    out["mask_token"] = sd["mask_token"]
    for i in range(len(model.decoder_blocks)):
        layer(f"decoder_blocks.{i}", f"decoder.decoder_layers.{i}")
    for w in ("weight", "bias"):
        out[f"decoder.norm.{w}"] = sd[f"decoder_norm.{w}"]
        out[f"decoder.head.{w}"] = sd[f"decoder_pred.{w}"]
    pe, blk, dblk = model.patch_embed, model.blocks[0], model.decoder_blocks[0]
    config = {
        "architectures": ["VideoMAEForPreTraining"], "model_type": "videomae",
        "image_size": pe.img_size, "patch_size": pe.patch_size, "num_frames": pe.num_frames,
        "tubelet_size": pe.t_patch_size, "num_channels": model.in_chans, "hidden_size": model.embed_dim,
        "num_hidden_layers": len(model.blocks), "num_attention_heads": blk.attn.num_heads,
        "intermediate_size": blk.mlp.fc1.out_features, "hidden_act": "gelu", "qkv_bias": True,
        "layer_norm_eps": blk.norm1.eps, "use_mean_pooling": False, "norm_pix_loss": True,
        "decoder_hidden_size": model.decoder_embed.out_features, "decoder_num_hidden_layers": len(model.decoder_blocks),
        "decoder_num_attention_heads": dblk.attn.num_heads, "decoder_intermediate_size": dblk.mlp.fc1.out_features,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    export_safetensors(out, out_dir / "model.safetensors", {"format": "pt"})
    return out_dir
