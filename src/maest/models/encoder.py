"""The video ViT encoder shared by the MAE pre-training model and the classifier.

Attribute names are the official MAE-ST ones (``patch_embed``, ``cls_token``,
``pos_embed_spatial/temporal/class``, ``blocks``, ``norm``), so encoder weights move between the two
models by name. Positional embeddings come in three kinds:

* ``"separable"``: learned space table (h*w) + time table (t) + class slot (MAE-ST default);
* ``"joint"``: one learned table over all tokens (the reference's ``sep_pos_embed=False``);
* ``"sincos"``: VideoMAE's fixed 1-D sinusoid over flattened tokens, kept out of the state dict.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from maest.data.transforms import MEAN, STD
from maest.models.layers import QKV_BIAS, Block, qkv_bias_form
from maest.models.patch_embed import PatchEmbed
from maest.models.pos_embed import separable_table, sincos_1d_table

POS_EMBED_TYPES = ("separable", "joint", "sincos")


def trunc_normal_(t: torch.Tensor, std: float = 0.02) -> torch.Tensor:
    # absolute cutoffs of +-2 are ~100 std away: effectively normal(std), as in the reference
    return nn.init.trunc_normal_(t, std=std, a=-2.0, b=2.0)


def make_pos_params(kind: str, grid: tuple[int, int], dim: int, cls_embed: bool) -> dict[str, nn.Parameter]:
    """Learned positional parameters for ``kind`` keyed by suffix ('spatial', 'temporal', 'class', '')."""
    t, hw = grid
    if kind == "separable":
        params = {"spatial": nn.Parameter(torch.zeros(1, hw, dim)), "temporal": nn.Parameter(torch.zeros(1, t, dim))}
        if cls_embed:
            params["class"] = nn.Parameter(torch.zeros(1, 1, dim))
        return params
    if kind == "joint":
        return {"": nn.Parameter(torch.zeros(1, t * hw + int(cls_embed), dim))}
    if kind == "sincos":
        return {}
    raise ValueError(f"unknown pos_embed_type {kind!r}; choose one of {POS_EMBED_TYPES}")


POOLINGS = ("mean", "cls", "token0")
MAEST_MEAN, MAEST_STD = MEAN, STD  # Kinetics statistics (MAE-ST, SlowFast): the data layer's default
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # VideoMAE, Hugging Face


@dataclass
class EncoderConfig:
    """Everything that fixes what an encoder computes: the one place model geometry lives.

    The MAE (:class:`~maest.models.mae.MAEConfig`) and the classifier
    (:class:`~maest.models.vit.ClassifierConfig`) nest it, checkpoints store it, and the data pipeline
    reads its ``mean``/``std``.

    Attributes:
        img_size, patch_size: input height = width, and the spatial patch p.
        num_frames, t_patch_size: input frames T, and the temporal patch u.
        in_chans, embed_dim, depth, num_heads, mlp_ratio: channels, width, blocks, heads, MLP width / D.
        qkv_bias: "qkv" (MAE-ST), "qv" (VideoMAE: query and value biases, no key bias) or "none".
        norm_eps: epsilon of the blocks' LayerNorms.
        final_norm: a LayerNorm after the blocks (False: none, as Hugging Face's pre-training model
            with ``use_mean_pooling``). The MAE applies it per token, the classifier to the pooled vector.
        final_norm_eps: its epsilon (Hugging Face's ``fc_norm``: 1e-5).
        pos_embed_type: "separable" (MAE-ST), "joint" or "sincos" (VideoMAE, fixed).
        cls_embed: prepend a learned class token.
        pooling: how one vector per clip is read: "mean" of the patch tokens, the "cls" token, or
            "token0", the first patch token (VideoMAE and Hugging Face without mean pooling).
        mean, std: per-channel input normalisation of pixels in [0, 1].
    """

    img_size: int = 224
    patch_size: int = 16
    num_frames: int = 16
    t_patch_size: int = 2
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: str = "qkv"
    norm_eps: float = 1e-6
    final_norm: bool = True
    final_norm_eps: float = 1e-6
    pos_embed_type: str = "separable"
    cls_embed: bool = True
    pooling: str = "mean"
    mean: tuple[float, ...] = MAEST_MEAN
    std: tuple[float, ...] = MAEST_STD

    def __post_init__(self) -> None:
        self.qkv_bias = qkv_bias_form(self.qkv_bias)
        self.mean, self.std = tuple(self.mean), tuple(self.std)

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (t, h, w)."""
        g = self.img_size // self.patch_size
        return self.num_frames // self.t_patch_size, g, g

    @property
    def num_patches(self) -> int:
        t, h, w = self.grid
        return t * h * w

    def validate(self, prefix: str = "model.encoder") -> EncoderConfig:
        def bad(key: str, why: str) -> ValueError:
            return ValueError(f"{prefix}.{key}={getattr(self, key)!r} {why}")

        for key in ("img_size", "patch_size", "num_frames", "t_patch_size", "in_chans", "embed_dim", "depth",
                    "num_heads"):
            if getattr(self, key) < 1:
                raise bad(key, "must be a positive integer")
        if self.img_size % self.patch_size:
            raise bad("img_size", f"is not a multiple of patch_size={self.patch_size}")
        if self.num_frames % self.t_patch_size:
            raise bad("num_frames", f"is not a multiple of t_patch_size={self.t_patch_size}")
        if self.embed_dim % self.num_heads:
            raise bad("num_heads", f"does not divide embed_dim={self.embed_dim}")
        if self.mlp_ratio <= 0 or self.norm_eps <= 0 or self.final_norm_eps <= 0:
            raise ValueError(f"{prefix}: mlp_ratio, norm_eps and final_norm_eps must be > 0")
        for key, choices in (("qkv_bias", QKV_BIAS), ("pos_embed_type", POS_EMBED_TYPES), ("pooling", POOLINGS)):
            if getattr(self, key) not in choices:
                raise bad(key, f"is not one of {choices}")
        if self.pooling == "cls" and not self.cls_embed:
            raise bad("pooling", "needs a class token; set cls_embed=true or use pooling=mean")
        if self.pooling == "token0" and self.cls_embed:
            raise bad("pooling", "reads the first patch token of a model without a class token; use pooling=cls")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans or min(self.std) <= 0:
            raise ValueError(f"{prefix}.mean/std: need {self.in_chans} values each, std > 0; got {self.mean} / "
                             f"{self.std}")
        return self

    def build(self) -> VideoEncoder:
        """The bare encoder (no decoder, no head)."""
        return VideoEncoder(self)


class VideoEncoder(nn.Module):
    """Patch embedding, positional embedding, transformer blocks and final norm.

    Args:
        cfg: the geometry (validated here).
        drop_path_rate: stochastic depth, rising linearly over depth (a fine-tuning setting).
        drop_rate: dropout in the blocks.
    """

    def __init__(self, cfg: EncoderConfig, drop_path_rate: float = 0.0, drop_rate: float = 0.0) -> None:
        super().__init__()
        c = cfg.validate()
        self.cfg = c
        self.patch_embed = PatchEmbed(c.img_size, c.patch_size, c.num_frames, c.t_patch_size, c.in_chans, c.embed_dim)
        self.grid = c.grid
        self.embed_dim = c.embed_dim
        self.in_chans = c.in_chans
        self.cls_embed = c.cls_embed
        self.pos_embed_type = c.pos_embed_type
        if c.cls_embed:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self._register_pos("pos_embed", c.embed_dim)
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, c.depth, device="cpu")]  # meta builds too
        self.blocks = nn.ModuleList(
            Block(c.embed_dim, c.num_heads, c.mlp_ratio, qkv_bias=c.qkv_bias, drop_path=dpr[i], drop=drop_rate,
                  norm_eps=c.norm_eps)
            for i in range(c.depth)
        )
        self.norm = nn.LayerNorm(c.embed_dim, eps=c.final_norm_eps) if c.final_norm else nn.Identity()
        self.grad_checkpointing = False

    def select_pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, cls + L, D) -> (B, D) by ``cfg.pooling``, without any norm."""
        if self.cfg.pooling in ("cls", "token0"):
            return tokens[:, 0]
        return tokens[:, int(self.cls_embed):].mean(dim=1)

    # -- positional embeddings -------------------------------------------------------------------
    def _register_pos(self, prefix: str, dim: int) -> None:
        t, h, w = self.grid
        for suffix, param in make_pos_params(self.pos_embed_type, (t, h * w), dim, self.cls_embed).items():
            setattr(self, f"{prefix}_{suffix}" if suffix else prefix, param)
        if self.pos_embed_type == "sincos":
            self.register_buffer(f"{prefix}_fixed", sincos_1d_table(t * h * w, dim), persistent=False)

    def _pos_tables(self, prefix: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(1, L, D) table for patch tokens and (1, 1, D) for the class token (None if absent)."""
        kind = self.pos_embed_type
        if kind == "separable":
            table = separable_table(getattr(self, f"{prefix}_spatial"), getattr(self, f"{prefix}_temporal"))
            return table, getattr(self, f"{prefix}_class") if self.cls_embed else None
        if kind == "joint":
            full = getattr(self, prefix)
            return (full[:, 1:], full[:, :1]) if self.cls_embed else (full, None)
        # fixed sin-cos has no class slot; a class token (if any) gets no positional term
        return getattr(self, f"{prefix}_fixed"), None

    # -- encoder ---------------------------------------------------------------------------------
    def embed_tokens(self, video: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, L, D) patch tokens, t-major, without positional terms; with
        ``ids_keep`` (B, N), only those tokens: (B, N, D)."""
        return self.patch_embed(video, ids_keep)

    def run_blocks(self, x: torch.Tensor, blocks: nn.ModuleList | None = None) -> torch.Tensor:
        """``x`` through ``blocks`` (the encoder's by default; the MAE passes its decoder's), each
        recomputed in the backward pass when ``grad_checkpointing`` is on (training with gradients)."""
        for blk in self.blocks if blocks is None else blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x

    def encode(self, x: torch.Tensor, ids_keep: torch.Tensor | None = None, norm: bool = True) -> torch.Tensor:
        """Add positions, prepend the class token, run the blocks and the final norm.

        Args:
            x: (B, N, D) patch tokens: all L of them, or the kept ones listed in ``ids_keep``.
            ids_keep: (B, N) original indices of ``x``'s tokens, or None for all tokens in order.
            norm: apply the final ``norm`` (the classifier applies it after pooling instead).

        Returns:
            (B, N + cls, D), class token first when ``cls_embed``.
        """
        B, N, D = x.shape
        pos, pos_cls = self._pos_tables("pos_embed")
        pos = pos.to(x.dtype).expand(B, -1, -1)
        if ids_keep is not None:
            # the reference gathers positions after masking; addition commutes, kept for parity
            pos = torch.gather(pos, 1, ids_keep.unsqueeze(-1).expand(-1, -1, D))
        x = x + pos
        if self.cls_embed:
            cls = self.cls_token.expand(B, -1, -1)
            if pos_cls is not None:
                cls = cls + pos_cls
            x = torch.cat([cls, x], dim=1)
        x = self.run_blocks(x)
        return self.norm(x) if norm else x

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """Unmasked encoding: (B, C, T, H, W) -> (B, cls + L, D)."""
        return self.encode(self.embed_tokens(video))

    def init_encoder_weights(self, trunc_init: bool = False) -> None:
        """The reference's initialisation: normal(.02) embeddings, xavier linears, unit LayerNorms."""
        if self.cls_embed:
            trunc_normal_(self.cls_token)
        for name, p in self.named_parameters(recurse=False):
            if name.startswith(("pos_embed", "decoder_pos_embed")):
                trunc_normal_(p)
        w = self.patch_embed.proj.weight.data
        if trunc_init:
            trunc_normal_(w, std=1.0)  # reference quirk: std 1.0 for the patch projection
        else:
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                if trunc_init:
                    trunc_normal_(m.weight)
                else:
                    nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
