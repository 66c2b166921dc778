"""Video ViT classifier for fine-tuning, initialised from MAE-ST pre-training (arXiv:2205.09113 §4).

Follows the official ``models_vit.VisionTransformer`` (facebookresearch/mae_st @c5dec1b): the
pre-training encoder's modules under the same names, pooling, then ``norm`` (reused as the post-pool
norm, eps 1e-6), dropout and a linear ``head``. One deliberate fix: "avg" pooling averages the patch
tokens only; the reference's ``x[:, 1:].mean(1)`` drops a *patch* token when there is no class token.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from maest.models.encoder import VideoEncoder, trunc_normal_
from maest.models.pos_embed import resize_spatial, resize_temporal
from maest.models.registry import register_model
from maest.models.zoo import _ENCODERS

GLOBAL_POOLS = ("avg", "token")
# pre-training keys with no classifier counterpart (decoder, mask token)
_PRETRAIN_ONLY = ("decoder_", "mask_token")


class VisionTransformer(VideoEncoder):
    """Video ViT classifier.

    Args:
        num_classes: output classes K.
        global_pool: "avg" (mean over patch tokens) or "token" (the class token; needs ``cls_embed``).
        dropout: dropout before the head (the official recipe: 0.3; argparse default 0.5).
        **encoder_kwargs: see :class:`~maest.models.encoder.VideoEncoder` (``drop_path_rate`` included).
    """

    def __init__(self, *, num_classes: int = 400, global_pool: str = "avg", dropout: float = 0.5,
                 **encoder_kwargs: Any) -> None:
        super().__init__(**encoder_kwargs)
        if global_pool not in GLOBAL_POOLS:
            raise ValueError(f"global_pool={global_pool!r} is not one of {GLOBAL_POOLS}")
        if global_pool == "token" and not self.cls_embed:
            raise ValueError("global_pool='token' needs a class token; set cls_embed=True or use 'avg'")
        self.global_pool = global_pool
        self.num_classes = num_classes
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.embed_dim, num_classes)
        self.init_encoder_weights()
        nn.init.normal_(self.head.weight, std=0.02)  # official: normal(.02) before pre-trained weights load

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, cls + L, D) tokens, *without* the final norm (applied after pooling)."""
        return self.encode(self.embed_tokens(video), norm=False)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, cls + L, D) -> (B, D): pooled and normalised features."""
        if self.global_pool == "token":
            return self.norm(tokens[:, 0])
        patches = tokens[:, 1:] if self.cls_embed else tokens
        return self.norm(patches.mean(dim=1))

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, cls + L, D) -> (B, K) logits."""
        return self.head(self.dropout(self.pool(tokens)))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) normalised clips -> (B, K) logits."""
        return self.forward_head(self.forward_features(video))

    def reset_head(self, std: float = 2e-5) -> None:
        """The official head init after loading pre-trained weights: trunc_normal(std=2e-5), zero bias."""
        trunc_normal_(self.head.weight, std=std)
        nn.init.zeros_(self.head.bias)


def _resize_pos(key: str, table: torch.Tensor, model: VideoEncoder) -> torch.Tensor:
    """Resize a pre-trained positional table to ``model``'s token grid (no-op when it already fits)."""
    t, h, w = model.grid
    if key.endswith("_spatial"):
        return resize_spatial(table, h)
    if key.endswith("_temporal"):
        return resize_temporal(table, t)
    if key.endswith("_class"):
        return table
    # joint table: optional class slot, then (t_old * g_old^2) t-major tokens
    cls, rest = table[:, : int(model.cls_embed)], table[:, int(model.cls_embed):]
    D, n = table.shape[-1], rest.shape[1]
    # the old grid is inferred assuming one of its two sizes matches the model's
    if n % t == 0 and math.isqrt(n // t) ** 2 == n // t:
        t_old, hw = t, n // t
    elif n % (h * w) == 0:
        t_old, hw = n // (h * w), h * w
    else:
        raise ValueError(f"cannot infer the token grid of a joint pos_embed with {n} positions for grid {model.grid}")
    grid = rest.reshape(t_old, hw, D)
    spatial = torch.stack([resize_spatial(grid[i:i + 1], h)[0] for i in range(t_old)])  # (t_old, h*w, D)
    full = resize_temporal(spatial.permute(1, 0, 2), t).permute(1, 0, 2)  # (t, h*w, D)
    return torch.cat([cls, full.reshape(1, t * h * w, D)], dim=1)


def load_pretrained(model: VisionTransformer, state: dict[str, torch.Tensor], reset_head: bool = True) -> dict:
    """Load encoder weights from a pre-training (or classifier) state dict, accounting for every key.

    Decoder keys and ``mask_token`` are dropped, positional tables are resized when the frame count or
    resolution differs, and a head of the wrong shape is dropped. Any other key the model lacks, or
    any model key the checkpoint lacks (other than the head), raises ``ValueError``.

    Returns:
        ``{"dropped": [...], "resized": [...], "head_loaded": bool}``.
    """
    own = model.state_dict()
    out, dropped, resized, unexpected = {}, [], [], []
    for k, v in state.items():
        if k.startswith(_PRETRAIN_ONLY):
            dropped.append(k)
        elif k.startswith("head.") and (k not in own or own[k].shape != v.shape):
            dropped.append(k)
        elif k not in own:
            unexpected.append(k)
        elif k.startswith("pos_embed") and v.shape != own[k].shape:
            out[k] = _resize_pos(k, v, model)
            resized.append(f"{k}: {tuple(v.shape)} -> {tuple(out[k].shape)}")
        else:
            out[k] = v
    missing = [k for k in own if k not in out and not k.startswith("head.")]
    bad_shape = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in out.items() if v.shape != own[k].shape]
    if unexpected or missing or bad_shape:
        raise ValueError(
            f"pre-trained weights do not fit {type(model).__name__}: unexpected {unexpected[:8]}, missing "
            f"{missing[:8]}, shape mismatch {bad_shape[:8]}; check cls_embed, pos_embed_type and model size"
        )
    head_loaded = all(k in out for k in ("head.weight", "head.bias"))
    model.load_state_dict(out, strict=False)  # every key is accounted for above; only the head may be absent
    if reset_head and not head_loaded:
        model.reset_head()
    return {"dropped": dropped, "resized": resized, "head_loaded": head_loaded}


def _vit(size: str, **overrides: Any) -> VisionTransformer:
    return VisionTransformer(**{**_ENCODERS[size], **overrides})


@register_model
def vit_tiny_test(**kw: Any) -> VisionTransformer:
    """Tiny classifier matching ``mae_vit_tiny_test``: for tests and CPU demos."""
    return _vit("tiny", **kw)


@register_model
def vit_small_patch16(**kw: Any) -> VisionTransformer:
    return _vit("small", **kw)


@register_model
def vit_base_patch16(**kw: Any) -> VisionTransformer:
    return _vit("base", **kw)


@register_model
def vit_large_patch16(**kw: Any) -> VisionTransformer:
    return _vit("large", **kw)


@register_model
def vit_huge_patch16(**kw: Any) -> VisionTransformer:
    return _vit("huge", **kw)
