"""Named model configurations. Sizes follow the reference factories (LayerNorm eps 1e-6, decoder
512 x 4 x 16 heads as in the paper's default rather than the reference argparse's depth 8); the
``videomae_*`` entries follow VideoMAE's released ViT-S/B/L/H (sin-cos positions, no class token,
query and value biases, ImageNet normalisation, decoders as in its pre-training scripts)."""

from __future__ import annotations

from typing import Any

from maest.models.encoder import IMAGENET_MEAN, IMAGENET_STD, EncoderConfig
from maest.models.mae import DecoderConfig, MAEConfig
from maest.models.masking import MaskConfig
from maest.models.registry import register_config
from maest.models.vit import ClassifierConfig
from maest.targets.config import TargetConfig

_ENCODERS: dict[str, dict[str, Any]] = {
    # the tiny test geometry of STYLE.md: 32 px, 4 frames, 8 px patches -> L = 32, 49k params
    "tiny": dict(img_size=32, patch_size=8, num_frames=4, embed_dim=32, depth=2, num_heads=2),
    # the CPU miniature of the paper (moving digits): 48 px, 8 frames, 8 px x 2-frame patches -> 4 x 6 x 6
    # = 144 tokens, 96 wide, 4 deep: 0.49M encoder parameters
    # (0.61M with the 64 x 2 decoder)
    "digits": dict(img_size=48, patch_size=8, num_frames=8, embed_dim=96, depth=4, num_heads=3),
    "small": dict(embed_dim=384, depth=12, num_heads=6),
    "base": dict(embed_dim=768, depth=12, num_heads=12),
    "large": dict(embed_dim=1024, depth=24, num_heads=16),
    "huge": dict(embed_dim=1280, depth=32, num_heads=16),
}
_DECODERS: dict[str, dict[str, Any]] = {
    "tiny": dict(embed_dim=16, depth=1, num_heads=2),
    # heads of 32 channels, as the reference's 512-wide, 16-head decoder: the decoder attends over all 144
    # tokens, and 16-channel heads cost twice the softmax work for no measured gain
    "digits": dict(embed_dim=64, depth=2, num_heads=2),
    "small": dict(embed_dim=512, depth=4, num_heads=16),
}
# VideoMAE's layout: what differs from MAE-ST's, for encoder and decoder
_VIDEOMAE_ENCODER = dict(qkv_bias="qv", pos_embed_type="sincos", cls_embed=False, pooling="mean",
                         mean=IMAGENET_MEAN, std=IMAGENET_STD)
_VIDEOMAE_DECODERS: dict[str, dict[str, Any]] = {  # VideoMAE's pre-training scripts: decoder depth 4
    "small": dict(embed_dim=192, depth=4, num_heads=3),
    "base": dict(embed_dim=384, depth=4, num_heads=6),
    "large": dict(embed_dim=512, depth=4, num_heads=8),
    "huge": dict(embed_dim=640, depth=4, num_heads=8),
}


def _mae(size: str, name: str, **encoder: Any) -> MAEConfig:
    enc = EncoderConfig(**{**_ENCODERS[size], **encoder})
    return MAEConfig(name=name, encoder=enc, decoder=DecoderConfig(**_DECODERS.get(size, _DECODERS["small"])))


def _vit(size: str, name: str, **encoder: Any) -> ClassifierConfig:
    return ClassifierConfig(name=name, encoder=EncoderConfig(**{**_ENCODERS[size], **encoder}))


def _videomae(size: str, name: str) -> MAEConfig:
    enc = EncoderConfig(**{**_ENCODERS[size], **_VIDEOMAE_ENCODER})
    dec = DecoderConfig(**_VIDEOMAE_DECODERS[size], qkv_bias="qv", embed_bias=False, t_pred_patch_size=2)
    return MAEConfig(name=name, encoder=enc, decoder=dec, mask=MaskConfig(strategy="tube"),
                     target=TargetConfig(kind="videomae_norm_pix"))


def _motion(cfg: MAEConfig, rule: str, ratio: float = 0.9) -> MAEConfig:
    cfg.mask = MaskConfig(strategy="motion", ratio=ratio, motion_rule=rule)
    return cfg


def _videomae_motion(size: str, name: str, rule: str) -> MAEConfig:
    return _motion(_videomae(size, name), rule)


# what each size is for (``maest models --verbose``)
SMOKE_TEST = "smoke test: too small to learn anything; checks that a setup runs"
_ABOUT = {"tiny": SMOKE_TEST, "digits": "the CPU demo on moving digits (maest demo)",
          "small": "ViT-S: a laptop CPU or one small GPU (the vit_s_112 presets: 112 px, 8 frames)",
          "base": "ViT-B, the paper's and VideoMAE's base size", "large": "ViT-L, the paper's main model",
          "huge": "ViT-H, the paper's largest"}
for _size in ("tiny", "small", "base", "large", "huge"):
    _suffix = "tiny_test" if _size == "tiny" else f"{_size}_patch16"
    register_config(f"mae_vit_{_suffix}", lambda s=_size, n=f"mae_vit_{_suffix}": _mae(s, n), aliases=(_size,),
                    about=f"pre-training; {_ABOUT[_size]}")
    register_config(f"vit_{_suffix}", lambda s=_size, n=f"vit_{_suffix}": _vit(s, n),
                    about=f"classifier; {_ABOUT[_size]}")
register_config("mae_vit_digits_patch8", lambda: _mae("digits", "mae_vit_digits_patch8"), aliases=("digits",),
                about=f"pre-training; {_ABOUT['digits']}")
register_config("vit_digits_patch8", lambda: _vit("digits", "vit_digits_patch8"),
                about=f"classifier; {_ABOUT['digits']}")
# the reference's ``mae_vit_huge_patch14`` factory, which really uses 14-pixel patches
register_config("mae_vit_huge_patch14", lambda: _mae("huge", "mae_vit_huge_patch14", patch_size=14),
                about="pre-training; the reference's ViT-H/14 (14-pixel patches)")
for _size in ("small", "base", "large", "huge"):
    register_config(f"videomae_vit_{_size}_patch16", lambda s=_size: _videomae(s, f"videomae_vit_{s}_patch16"),
                    about=f"pre-training in VideoMAE's layout (VideoMAE and Hugging Face checkpoints convert to it); "
                          f"{_ABOUT[_size].split(':')[0]}")
# motion-guided masking (maest.models.motion_masking): MGMAE's recipe, VideoMAE's layout with the base frame's
# mask warped along each clip's motion (pre-train with data.motion=codec or data.motion=flow)
register_config("mgmae_vit_base_patch16",
                lambda: _videomae_motion("base", "mgmae_vit_base_patch16", "warp"),
                about="pre-training; VideoMAE ViT-B with MGMAE's motion-warped masks (needs data.motion)")
register_config("mgm_vit_base_patch16",
                lambda: _videomae_motion("base", "mgm_vit_base_patch16", "magnitude"),
                about="pre-training; VideoMAE ViT-B masking the fastest-moving tokens, MGM-style (needs data.motion)")
register_config("mae_vit_digits_motion",
                lambda: _motion(_mae("digits", "mae_vit_digits_motion"), "warp", 0.75),
                about="pre-training; the CPU digits model with motion-warped masks (needs data.motion)")
