"""VideoMAE / VideoMAE V2 checkpoints from the original repositories (MCG-NJU/VideoMAE,
OpenGVLab/VideoMAEv2).

Their layout: fused ``attn.qkv.weight`` with ``attn.q_bias`` / ``attn.v_bias`` (query and value
biases, no key bias: maest's ``qkv_bias="qv"``) or no bias at all; fixed 1-D sinusoid positions (not
stored); pre-training keys under ``encoder.`` / ``decoder.`` with ``encoder_to_decoder`` (no bias)
and ``decoder.head`` predicting every frame of a tube; fine-tuned models either mean-pool and apply
``fc_norm`` (no per-token ``norm``), or take token 0 after ``norm``.

The weights do not record the number of attention heads. It comes from the official release
configurations (:data:`RELEASES`, :data:`DECODER_HEADS`) or from the caller; a checkpoint that matches
no release and was given no head count is refused rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from maest.convert.accounting import ConversionError, KeyMap
from maest.convert.spec import IMAGENET_MEAN, IMAGENET_STD, Imported, mlp_ratio
from maest.models.pos_embed import sincos_1d_table

# (embed_dim, depth) -> (name, heads) of the encoders in the official model factories
# (modeling_pretrain.py / modeling_finetune.py of both repositories; all with mlp_ratio 4 except ViT-g)
RELEASES: dict[tuple[int, int], tuple[str, int]] = {
    (384, 12): ("ViT-S", 6),
    (768, 12): ("ViT-B", 12),
    (1024, 24): ("ViT-L", 16),
    (1280, 32): ("ViT-H", 16),  # head dim 80
    (1408, 40): ("ViT-g", 16),  # VideoMAE V2 only; head dim 88, mlp_ratio 48/11, patch 14
}
# (encoder name, decoder width) -> decoder heads. VideoMAE's ViT-H decoder is 640 wide, V2's 512.
DECODER_HEADS: dict[tuple[str, int], int] = {
    ("ViT-S", 192): 3,
    ("ViT-B", 384): 6,
    ("ViT-L", 512): 8,
    ("ViT-H", 640): 8,
    ("ViT-H", 512): 8,
    ("ViT-g", 512): 8,
}
NORM_EPS = 1e-6  # every official factory uses partial(nn.LayerNorm, eps=1e-6), the decoder's too
_BLOCK = ("norm1", "norm2", "attn.proj", "mlp.fc1", "mlp.fc2")


def is_videomae(state: dict[str, torch.Tensor]) -> bool:
    """True for VideoMAE layout: fused ``attn.qkv.weight`` in ``blocks``/``encoder.blocks``."""
    return any(k.startswith(("blocks.0.attn.qkv.weight", "encoder.blocks.0.attn.qkv.weight")) for k in state)


def _depth(state: dict[str, torch.Tensor], prefix: str) -> int:
    n = prefix.count(".")
    idx = {int(k.split(".")[n]) for k in state if k.startswith(prefix)}
    if idx != set(range(len(idx))):
        raise ConversionError(f"VideoMAE checkpoint: {prefix}N blocks are not numbered 0..{len(idx) - 1}: "
                              f"{sorted(idx)}")
    return len(idx)


def _qkv_bias(state: dict[str, torch.Tensor], block: str) -> str:
    if f"{block}.attn.q_bias" in state:
        return "qv"
    if f"{block}.attn.qkv.bias" in state:
        return "qkv"
    return "none"


def _refuse_unrepresentable(state: dict[str, torch.Tensor]) -> None:
    cos = sorted(k for k in state if k.endswith(".attn.scale"))
    if cos:
        raise ConversionError(f"VideoMAE checkpoint uses cosine attention ({cos[0]}: VideoMAE V2 cos_attn), which "
                              "maest's attention cannot represent")


def _heads(width: int, given: int | None, what: str, known: int | None, flag: str, why: str) -> int:
    if given is not None:
        if given < 1 or width % given:
            raise ConversionError(f"{flag} {given} does not divide the {what} width {width}")
        return given
    if known is None:
        options = [f"{width // d} for head dim {d}" for d in (64, 32) if width % d == 0]
        hint = f" ({' or '.join(options)})" if options else f" (a divisor of {width})"
        raise ConversionError(f"the {what} is {why}, so its number of attention heads is unknown (the weights do not "
                              f"record it): pass {flag}{hint}")
    return known


def read_videomae(
    state: dict[str, torch.Tensor],
    num_frames: int = 16,
    img_size: int = 224,
    num_heads: int | None = None,
    decoder_num_heads: int | None = None,
) -> Imported:
    """Geometry and maest-named weights of a VideoMAE pre-training (``encoder.*``/``decoder.*``) or
    fine-tuned (flat, with ``head``) state dict.

    Args:
        num_frames, img_size: the clip the model was trained on (not recorded in the weights: the
            sinusoid positions are recomputed for this grid).
        num_heads, decoder_num_heads: attention heads, when the checkpoint is not an official release.

    Raises:
        ConversionError: something maest cannot represent exactly, or a head count that is not known.
    """
    _refuse_unrepresentable(state)
    pretrain = any(k.startswith("encoder.") for k in state)
    encoder, enc = _read_encoder(state, "encoder." if pretrain else "", num_frames, img_size, num_heads)
    km = KeyMap(state, "VideoMAE checkpoint")
    notes: list[str] = []
    _move_encoder(km, enc, encoder, notes)
    decoder = None
    if pretrain:
        decoder = _move_decoder(km, enc, decoder_num_heads, notes)
        num_classes = 0
    else:
        num_classes = _move_head(km, encoder)
    # VideoMAE pre-trains with tube masking on per-channel normalised pixels (its normlize_target)
    return Imported("mae" if pretrain else "classifier", encoder, decoder, km.consumed(), num_classes=num_classes,
                    mask_strategy="tube", target="videomae_norm_pix", notes=notes)


@dataclass
class _Encoder:
    """The encoder as its weights give it: key prefix, width D, channels C, tubes of u frames x p x p
    pixels, depth, MLP width, attention-bias form, and the official release (name, heads) it is, if any."""

    prefix: str
    D: int
    C: int
    u: int
    p: int
    depth: int
    hidden: int
    bias: str
    release: tuple[str, int] | None


def _read_encoder(state: dict[str, torch.Tensor], enc: str, num_frames: int, img_size: int,
                  num_heads: int | None) -> tuple[dict[str, Any], _Encoder]:
    """The encoder's maest configuration for clips of ``num_frames`` x ``img_size``, and its geometry."""
    if f"{enc}patch_embed.proj.weight" not in state:
        raise ConversionError(f"VideoMAE checkpoint has no {enc}patch_embed.proj.weight; is it a VideoMAE file?")
    w = state[f"{enc}patch_embed.proj.weight"]
    D, C, u, p, p2 = w.shape
    depth = _depth(state, f"{enc}blocks.")
    if depth == 0 or p != p2:
        raise ConversionError(f"VideoMAE checkpoint: {depth} blocks, patch {p}x{p2}: not a video ViT")
    hidden = state[f"{enc}blocks.0.mlp.fc1.weight"].shape[0]
    release = RELEASES.get((D, depth))
    heads = _heads(D, num_heads, "encoder", release[1] if release else None, "--num-heads",
                   f"{D} wide and {depth} deep, which is no VideoMAE / VideoMAE V2 release (ViT-S/B/L/H/g)")
    if C != 3:
        raise ConversionError(f"VideoMAE checkpoint has {C} input channels; only RGB models are supported")
    if img_size % p or num_frames % u:
        raise ConversionError(f"--img-size {img_size} / --num-frames {num_frames} do not tile into the checkpoint's "
                              f"{u}x{p}x{p} patches")
    bias = _qkv_bias(state, f"{enc}blocks.0")
    encoder = dict(img_size=img_size, patch_size=p, num_frames=num_frames, t_patch_size=u, in_chans=C, embed_dim=D,
                   depth=depth, num_heads=heads, mlp_ratio=mlp_ratio(hidden, D), qkv_bias=bias, norm_eps=NORM_EPS,
                   final_norm=True, final_norm_eps=NORM_EPS, pos_embed_type="sincos", cls_embed=False,
                   pooling="mean", mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return encoder, _Encoder(enc, D, C, u, p, depth, hidden, bias, release)


def _move_encoder(km: KeyMap, enc: _Encoder, encoder: dict[str, Any], notes: list[str]) -> None:
    """The patch embedding, the blocks and a stored position table (a learned one sets ``pos_embed_type``)."""
    pre, num_frames, img_size = enc.prefix, encoder["num_frames"], encoder["img_size"]
    km.move(f"{pre}patch_embed.proj.weight", "patch_embed.proj.weight")
    km.move(f"{pre}patch_embed.proj.bias", "patch_embed.proj.bias")
    for i in range(enc.depth):
        _block(km, f"{pre}blocks.{i}", f"blocks.{i}", enc.bias, notes)
    pos_key = f"{pre}pos_embed"
    if km.has(pos_key):
        num_patches = (num_frames // enc.u) * (img_size // enc.p) ** 2
        table = km.source[pos_key]
        if table.shape != (1, num_patches, enc.D):
            raise ConversionError(f"{pos_key} has shape {tuple(table.shape)}, but --num-frames {num_frames} and "
                                  f"--img-size {img_size} give {num_patches} tokens; pass the sizes it was trained on")
        if (table.float() - sincos_1d_table(num_patches, enc.D)).abs().max() < 1e-5:
            km.skip(pos_key)  # a stored copy of the fixed sinusoid (mmaction2, some forks): recomputed
        else:  # learned positions (use_learnable_pos_emb): one table over all tokens
            encoder["pos_embed_type"] = "joint"
            km.move(pos_key, "pos_embed")


def _move_decoder(km: KeyMap, enc: _Encoder, decoder_num_heads: int | None, notes: list[str]) -> dict[str, Any]:
    """A pre-training checkpoint's encoder norm, ``encoder_to_decoder``, mask token and decoder; returns
    the decoder's configuration."""
    state, release, C, u, p = km.source, enc.release, enc.C, enc.u, enc.p
    for w_ in ("weight", "bias"):
        km.move(f"encoder.norm.{w_}", f"norm.{w_}")
    if "encoder_to_decoder.bias" in state:
        km.move("encoder_to_decoder.bias", "decoder_embed.bias")
    km.move("encoder_to_decoder.weight", "decoder_embed.weight")
    km.move("mask_token", "mask_token")
    Dd = state["encoder_to_decoder.weight"].shape[0]
    ddepth = _depth(state, "decoder.blocks.")
    dheads = _heads(Dd, decoder_num_heads, "decoder",
                    DECODER_HEADS.get((release[0], Dd)) if release else None,
                    "--decoder-num-heads",
                    f"{Dd} wide" + (f" behind a {release[0]} encoder, which no release pairs"
                                    if release else " behind an encoder that is no release"))
    dbias = _qkv_bias(state, "decoder.blocks.0") if ddepth else enc.bias
    for i in range(ddepth):
        _block(km, f"decoder.blocks.{i}", f"decoder_blocks.{i}", dbias, notes)
    for w_ in ("weight", "bias"):
        km.move(f"decoder.norm.{w_}", f"decoder_norm.{w_}")
        km.move(f"decoder.head.{w_}", f"decoder_pred.{w_}")
    out = state["decoder.head.weight"].shape[0]
    if out != C * u * p * p:
        raise ConversionError(f"decoder.head predicts {out} values per token; a VideoMAE decoder predicts "
                              f"{C}x{u}x{p}x{p} = {C * u * p * p} (every frame of the tube)")
    dhidden = state["decoder.blocks.0.mlp.fc1.weight"].shape[0] if ddepth else enc.hidden * Dd // enc.D
    return dict(embed_dim=Dd, depth=ddepth, num_heads=dheads, mlp_ratio=mlp_ratio(dhidden, Dd), qkv_bias=dbias,
                norm_eps=NORM_EPS, final_norm_eps=NORM_EPS, embed_bias="encoder_to_decoder.bias" in state,
                t_pred_patch_size=u)


def _move_head(km: KeyMap, encoder: dict[str, Any]) -> int:
    """A fine-tuned checkpoint's final norm (which sets the encoder's ``pooling``) and classifier head;
    returns the number of classes."""
    state = km.source
    if "head.weight" not in state:
        raise ConversionError("VideoMAE checkpoint has neither encoder./decoder. keys (pre-training) nor "
                              "head.weight (fine-tuned); a bare encoder has no maest counterpart")
    if "fc_norm.weight" in state:  # use_mean_pooling: fc_norm on the token mean, no per-token norm
        src, encoder["pooling"] = "fc_norm", "mean"
    elif "norm.weight" in state:  # token 0 after the final norm (their --use_cls)
        src, encoder["pooling"] = "norm", "token0"
    else:
        raise ConversionError("VideoMAE fine-tuned checkpoint has neither fc_norm nor norm: no final norm to read")
    for w_ in ("weight", "bias"):
        km.move(f"{src}.{w_}", f"norm.{w_}")
        km.move(f"head.{w_}", f"head.{w_}")
    return state["head.weight"].shape[0]


def _block(km: KeyMap, src: str, dst: str, bias: str, notes: list[str]) -> None:
    for name in _BLOCK:
        for w in ("weight", "bias"):
            km.move(f"{src}.{name}.{w}", f"{dst}.{name}.{w}")
    q, k, v = km.take(f"{src}.attn.qkv.weight").chunk(3)
    for short, t in zip("qkv", (q, k, v), strict=True):
        km.put(f"{dst}.attn.{short}.weight", t)
    found = _qkv_bias(km.source, src)
    if found != bias:
        raise ConversionError(f"{src}: attention bias form {found!r} differs from the first block's {bias!r}")
    if bias == "qv":
        km.move(f"{src}.attn.q_bias", f"{dst}.attn.q.bias")
        km.move(f"{src}.attn.v_bias", f"{dst}.attn.v.bias")
    elif bias == "qkv":  # SlowFast-style full bias
        for short, t in zip("qkv", km.take(f"{src}.attn.qkv.bias").chunk(3), strict=True):
            km.put(f"{dst}.attn.{short}.bias", t)
    # layer scale (init_values > 0): gamma * (W x + b) == (diag(gamma) W) x + gamma b, folded exactly
    for gamma, lin in (("gamma_1", "attn.proj"), ("gamma_2", "mlp.fc2")):
        if km.has(f"{src}.{gamma}"):
            g = km.take(f"{src}.{gamma}")
            km.put(f"{dst}.{lin}.weight", km.out[f"{dst}.{lin}.weight"] * g[:, None])
            km.put(f"{dst}.{lin}.bias", km.out[f"{dst}.{lin}.bias"] * g)
            if not notes:
                notes.append("layer-scale gammas folded into attn.proj and mlp.fc2")
