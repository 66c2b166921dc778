"""Video ViT classifier for fine-tuning, initialised from MAE-ST pre-training (arXiv:2205.09113 §4).

Follows the official ``models_vit.VisionTransformer`` (facebookresearch/mae_st @c5dec1b): the
pre-training encoder's modules under the same names, pooling, then ``norm`` (reused as the post-pool
norm, eps 1e-6), dropout and a linear ``head``. One deliberate fix: "mean" pooling averages the patch
tokens only; the reference's ``x[:, 1:].mean(1)`` drops a *patch* token when there is no class token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from maest.models.encoder import EncoderConfig, VideoEncoder, trunc_normal_
from maest.models.pos_embed import resize_spatial, resize_temporal
from maest.models.probe import ProbedEncoder
from maest.models.registry import Registered

PROBES = ("none", "linear", "attentive")
# pre-training keys with no classifier counterpart (decoder, mask token)
_PRETRAIN_ONLY = ("decoder_", "mask_token")


@dataclass
class ClassifierConfig(Registered):
    """A video classifier: the encoder plus its head.

    Attributes:
        name: the registered name it started from (a label).
        encoder: geometry, pooling and input normalisation.
        num_classes: K; 0 in a fine-tuning recipe means "as many as the training data has" (resolved
            before the model is built).
        dropout: before the head (the official recipe: 0.3).
        drop_path: stochastic depth of the encoder blocks, rising linearly over depth.
        label_names: class names in label order (empty: unnamed), carried into exports and reports.
        probe: "none" (the whole network trains), "linear" (BatchNorm + linear on the frozen pooled
            features) or "attentive" (cross-attention pooling on the frozen tokens).
    """

    name: str = "vit_large_patch16"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    num_classes: int = 400
    dropout: float = 0.3
    drop_path: float = 0.2
    label_names: list[str] = field(default_factory=list)
    probe: str = "none"

    @property
    def kind(self) -> str:
        return "classifier" if self.probe == "none" else "probe"

    def validate(self) -> ClassifierConfig:
        self.encoder.validate()
        if self.num_classes < 0:
            raise ValueError(f"model.num_classes={self.num_classes} must be a positive integer (or 0: from the data)")
        if self.probe not in PROBES:
            raise ValueError(f"model.probe={self.probe!r} is not one of {PROBES}")
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.drop_path < 1.0):
            raise ValueError(f"model.dropout={self.dropout} and model.drop_path={self.drop_path} must be in [0, 1)")
        if self.label_names and self.num_classes and len(self.label_names) != self.num_classes:
            raise ValueError(f"model.label_names has {len(self.label_names)} names for num_classes={self.num_classes}")
        return self

    def build(self) -> nn.Module:
        """The classifier, or for a probe the frozen classifier wrapped with its probe."""
        model = VisionTransformer(self)
        return model if self.probe == "none" else ProbedEncoder(model, self.probe, self.num_classes)


class VisionTransformer(VideoEncoder):
    """Video ViT classifier built from a :class:`ClassifierConfig`: encoder, pooling by
    ``encoder.pooling``, the final norm on the pooled vector, dropout and a linear ``head``."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        cfg.validate()
        if cfg.num_classes < 1:
            raise ValueError("model.num_classes=0 (as many as the training data has) has not been resolved; set "
                             "model.num_classes to build this classifier")
        super().__init__(cfg.encoder, drop_path_rate=cfg.drop_path)
        self.model_cfg = cfg
        self.num_classes = cfg.num_classes
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(self.embed_dim, cfg.num_classes)
        self.init_encoder_weights()
        nn.init.normal_(self.head.weight, std=0.02)  # official: normal(.02) before pre-trained weights load

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, cls + L, D) tokens, *without* the final norm (applied after pooling)."""
        return self.encode(self.embed_tokens(video), norm=False)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, cls + L, D) -> (B, D): pooled, then normalised (for token pooling this equals the
        per-token norm of VideoMAE without ``fc_norm``)."""
        return self.norm(self.select_pooled(tokens))

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
