"""Named model configurations. Sizes follow the reference factories (LayerNorm eps 1e-6, decoder
512 x 4 x 16 heads as in the paper's default rather than the reference argparse's depth 8)."""

from __future__ import annotations

from typing import Any

from maest.models.mae import MaskedAutoencoderViT
from maest.models.registry import register_model

_ENCODERS: dict[str, dict[str, Any]] = {
    # the tiny test geometry of STYLE.md: 32 px, 4 frames, 8 px patches -> L = 32, 49k params
    "tiny": dict(img_size=32, patch_size=8, num_frames=4, embed_dim=32, depth=2, num_heads=2),
    "small": dict(embed_dim=384, depth=12, num_heads=6),
    "base": dict(embed_dim=768, depth=12, num_heads=12),
    "large": dict(embed_dim=1024, depth=24, num_heads=16),
    "huge": dict(embed_dim=1280, depth=32, num_heads=16),
}
_DECODERS: dict[str, dict[str, Any]] = {
    "tiny": dict(decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2),
    "small": dict(decoder_embed_dim=512, decoder_depth=4, decoder_num_heads=16),
}


def _mae(size: str, **defaults: Any):
    def build(**overrides: Any) -> MaskedAutoencoderViT:
        kw: dict[str, Any] = {**_ENCODERS[size], **_DECODERS.get(size, _DECODERS["small"]), **defaults}
        kw.update(overrides)
        return MaskedAutoencoderViT(**kw)

    return build


@register_model(aliases=("tiny",))
def mae_vit_tiny_test(**kw: Any) -> MaskedAutoencoderViT:
    """Tiny model for tests and CPU demos."""
    return _mae("tiny")(**kw)


@register_model(aliases=("small",))
def mae_vit_small_patch16(**kw: Any) -> MaskedAutoencoderViT:
    return _mae("small")(**kw)


@register_model(aliases=("base",))
def mae_vit_base_patch16(**kw: Any) -> MaskedAutoencoderViT:
    return _mae("base")(**kw)


@register_model(aliases=("large",))
def mae_vit_large_patch16(**kw: Any) -> MaskedAutoencoderViT:
    return _mae("large")(**kw)


@register_model(aliases=("huge",))
def mae_vit_huge_patch16(**kw: Any) -> MaskedAutoencoderViT:
    """ViT-H with 2x16x16 patches as in the paper and the released checkpoints."""
    return _mae("huge")(**kw)


@register_model
def mae_vit_huge_patch14(**kw: Any) -> MaskedAutoencoderViT:
    """The reference's ``mae_vit_huge_patch14`` factory, which really uses 14-pixel patches."""
    return _mae("huge", patch_size=14)(**kw)
