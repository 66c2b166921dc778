"""MAE-ST pre-training model: a video ViT encoder on the visible tokens and a light decoder that
predicts the pixels of every token (Feichtenhofer et al., arXiv:2205.09113).

Reproduces the official ``models_mae.MaskedAutoencoderViT`` (facebookresearch/mae_st @c5dec1b):
same parameter names and shapes, same masking order, the zero-initialised decoder class token, and
a prediction of ``t_pred_patch_size`` frames per token. The loss lives in :mod:`maest.losses`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from maest.models.encoder import VideoEncoder, trunc_normal_
from maest.models.layers import Block
from maest.models.masking import STRATEGIES, mask_indices, mask_noise, num_keep


class MAEOutput(NamedTuple):
    """pred: (B, L, t_pred_patch_size*p*p*C) for every token; mask: (B, L), 1 = removed;
    ids_restore: (B, L)."""

    pred: torch.Tensor
    mask: torch.Tensor
    ids_restore: torch.Tensor


class TargetSpec(NamedTuple):
    """What the decoder predicts: ``frames`` target frames, tiled into u x p x p patches."""

    patch_size: int
    t_patch_size: int
    frames: int


class MaskedAutoencoderViT(VideoEncoder):
    """Masked autoencoder over spacetime patches.

    Args:
        decoder_embed_dim: decoder width.
        decoder_depth: decoder blocks.
        decoder_num_heads: decoder heads.
        pred_t_dim: number of target frames (default: num_frames // t_patch_size, as the reference's
            8 of 16); each token predicts ``t_patch_size * pred_t_dim // num_frames`` of them.
        mask_strategy: "random" (spacetime-agnostic, default), "tube" or "frame".
        decoder_norm_eps: epsilon of ``decoder_norm`` (default: the blocks' ``norm_eps``).
        trunc_init: the reference's alternative initialisation.
        **encoder_kwargs: see :class:`~maest.models.encoder.VideoEncoder`.
    """

    def __init__(
        self,
        *,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 4,
        decoder_num_heads: int = 16,
        pred_t_dim: int | None = None,
        mask_strategy: str = "random",
        decoder_norm_eps: float | None = None,
        trunc_init: bool = False,
        **encoder_kwargs,
    ) -> None:
        super().__init__(**encoder_kwargs)
        num_frames, u = self.patch_embed.num_frames, self.patch_embed.t_patch_size
        pred_t_dim = num_frames // u if pred_t_dim is None else pred_t_dim
        if not 0 < pred_t_dim <= num_frames or (u * pred_t_dim) % num_frames:
            raise ValueError(
                f"pred_t_dim={pred_t_dim} must be in [1, {num_frames}] with t_patch_size*pred_t_dim divisible "
                f"by num_frames={num_frames}; use {num_frames // u} (one target frame per token) or {num_frames}"
            )
        if mask_strategy not in STRATEGIES:
            raise ValueError(f"unknown mask_strategy {mask_strategy!r}; choose one of {STRATEGIES}")
        self.pred_t_dim = pred_t_dim
        self.t_pred_patch_size = u * pred_t_dim // num_frames
        self.mask_strategy = mask_strategy
        p = self.patch_embed.patch_size
        mlp_ratio = self.blocks[0].mlp.fc1.out_features / self.embed_dim if len(self.blocks) else 4.0
        norm_eps = self.blocks[0].norm1.eps if len(self.blocks) else self.norm.eps
        qkv_bias = self.blocks[0].attn.q.bias is not None if len(self.blocks) else True

        self.decoder_embed = nn.Linear(self.embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        if self.cls_embed:
            # never initialised in the reference: stays zero (kept for parity)
            self.decoder_cls_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self._register_pos("decoder_pos_embed", decoder_embed_dim)
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=qkv_bias, norm_eps=norm_eps)
            for _ in range(decoder_depth)
        )
        dec_eps = norm_eps if decoder_norm_eps is None else decoder_norm_eps
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=dec_eps)
        self.decoder_pred = nn.Linear(decoder_embed_dim, self.t_pred_patch_size * p * p * self.in_chans)
        self._init_weights(trunc_init)

    def _init_weights(self, trunc_init: bool) -> None:
        self.init_encoder_weights(trunc_init)
        if trunc_init:
            trunc_normal_(self.mask_token)
        else:
            nn.init.normal_(self.mask_token, std=0.02)

    @property
    def target_spec(self) -> TargetSpec:
        return TargetSpec(self.patch_embed.patch_size, self.t_pred_patch_size, self.pred_t_dim)

    @property
    def num_patches(self) -> int:
        return self.patch_embed.num_patches

    def make_noise(self, batch: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Masking noise (B, L) for this model's grid and strategy."""
        return mask_noise(batch, self.grid, self.mask_strategy, generator=generator, device=device)

    def forward_encoder(
        self, video: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode the visible tokens.

        Args:
            video: (B, C, T, H, W).
            mask_ratio: fraction of tokens removed, in (0, 1).
            noise: (B, L) masking noise; drawn for ``mask_strategy`` when None.

        Returns:
            latent (B, len_keep, D) without the class token, mask (B, L), ids_restore (B, L).
        """
        B, L = video.shape[0], self.num_patches
        if noise is None:
            noise = self.make_noise(B, device=video.device)
        if noise.shape != (B, L):
            raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {(B, L)} (batch, tokens)")
        keep = num_keep(mask_ratio, self.grid, self.mask_strategy)
        # masking decides on indices first, so only the visible patches are embedded (the reference
        # embeds all and then gathers: the same numbers, ten times the projection work at 90%)
        m = mask_indices(noise.to(video.device), keep, video.dtype)
        latent = self.encode(self.embed_tokens(video, m.ids_keep), m.ids_keep)
        # the decoder brings its own class token, so the encoder's is dropped here as in the reference
        return (latent[:, 1:] if self.cls_embed else latent), m.mask, m.ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """(B, len_keep, D) latent -> (B, L, t_pred_patch_size*p*p*C) predictions."""
        x = self.decoder_embed(latent)
        B, N, C = x.shape
        L = ids_restore.shape[1]
        x = torch.cat([x, self.mask_token.to(x.dtype).expand(B, L - N, -1)], dim=1)
        x = torch.gather(x, 1, ids_restore.unsqueeze(-1).expand(-1, -1, C))  # unshuffle to token order
        pos, pos_cls = self._pos_tables("decoder_pos_embed")
        x = x + pos.to(x.dtype)
        if self.cls_embed:
            cls = self.decoder_cls_token.expand(B, -1, -1).to(x.dtype)
            if pos_cls is not None:
                cls = cls + pos_cls
            x = torch.cat([cls, x], dim=1)
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_pred(self.decoder_norm(x))
        return x[:, 1:] if self.cls_embed else x

    def forward(self, video: torch.Tensor, mask_ratio: float = 0.9, noise: torch.Tensor | None = None) -> MAEOutput:
        """Mask, encode, decode. ``video``: (B, C, T, H, W), normalised pixels."""
        latent, mask, ids_restore = self.forward_encoder(video, mask_ratio, noise)
        return MAEOutput(self.forward_decoder(latent, ids_restore), mask, ids_restore)
