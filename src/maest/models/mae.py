"""MAE-ST pre-training model: a video ViT encoder on the visible tokens and a light decoder that
predicts the pixels of every token (Feichtenhofer et al., arXiv:2205.09113).

Reproduces the official ``models_mae.MaskedAutoencoderViT`` (facebookresearch/mae_st @c5dec1b):
same parameter names and shapes, same masking order, the zero-initialised decoder class token, and
a prediction of ``t_pred_patch_size`` frames per token. The loss lives in :mod:`maest.train.losses`, the
targets in :mod:`maest.targets`.

With a decoder mask (``model.mask.decoder``, VideoMAE V2, arXiv:2303.16727) the decoder runs on the
visible tokens plus mask tokens at the decoded positions only and predicts just those; this matches
the official V2 pre-training step to fp32 rounding (tests/models/test_dual_masking.py). Without one, the
MAE-ST path is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from maest.models.encoder import EncoderConfig, VideoEncoder, trunc_normal_
from maest.models.layers import QKV_BIAS, Block, qkv_bias_form
from maest.models.masking import (
    MaskConfig,
    decoder_mask_noise,
    decoder_num_keep,
    mask_indices,
    mask_noise,
    num_keep,
)
from maest.models.registry import Registered
from maest.targets.config import TargetConfig, target_dim


class MAEOutput(NamedTuple):
    """pred: (B, L, K) for every token, or (B, N, K) for the N decoded tokens listed in ``pred_ids``
    when the decoder is masked (VideoMAE V2); mask: (B, L), 1 = removed; ids_restore: (B, L);
    pred_ids: (B, N) token indices in ascending order, or None when every token is predicted."""

    pred: torch.Tensor
    mask: torch.Tensor
    ids_restore: torch.Tensor
    pred_ids: torch.Tensor | None = None


class TargetSpec(NamedTuple):
    """What the decoder predicts: ``frames`` target frames, tiled into patches of ``t_pred_patch_size``
    frames x ``patch_size`` x ``patch_size`` pixels (one patch per token)."""

    patch_size: int
    t_pred_patch_size: int
    frames: int


@dataclass
class DecoderConfig:
    """The light decoder: width, depth, heads, block form and what it predicts.

    Attributes:
        embed_dim, depth, num_heads, mlp_ratio: decoder width, blocks, heads, MLP width / width.
        qkv_bias: "qkv", "qv" or "none" (as the encoder's).
        norm_eps: epsilon of the blocks' LayerNorms; final_norm_eps: of ``decoder_norm``.
        embed_bias: ``decoder_embed`` has a bias (VideoMAE's ``encoder_to_decoder`` has none).
        t_pred_patch_size: frames each token predicts, of its ``t_patch_size`` input frames: 1 is the
            reference's (8 target frames of 16, sampled evenly), ``t_patch_size`` predicts every frame
            (VideoMAE).
    """

    embed_dim: int = 512
    depth: int = 4
    num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: str = "qkv"
    norm_eps: float = 1e-6
    final_norm_eps: float = 1e-6
    embed_bias: bool = True
    t_pred_patch_size: int = 1

    def __post_init__(self) -> None:
        self.qkv_bias = qkv_bias_form(self.qkv_bias)


@dataclass
class MAEConfig(Registered):
    """The pre-training model: encoder + decoder + masking strategy + target.

    Attributes:
        name: the registered name it started from (a label; the fields below are what count).
        mask: encoder and decoder masking (``model.mask.*``, :class:`~maest.models.masking.MaskConfig`).
        target: what the decoder predicts (``model.target.*``, :class:`~maest.targets.TargetConfig`);
            the decoder's output width follows it.
    """

    name: str = "mae_vit_base_patch16"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    target: TargetConfig = field(default_factory=TargetConfig)

    kind = "mae"

    def validate(self) -> MAEConfig:
        e, d = self.encoder.validate(), self.decoder
        if not 1 <= d.t_pred_patch_size <= e.t_patch_size:
            raise ValueError(f"model.decoder.t_pred_patch_size={d.t_pred_patch_size} must be in [1, t_patch_size="
                             f"{e.t_patch_size}]: 1 predicts one frame per token (MAE-ST), {e.t_patch_size} all")
        for key in ("embed_dim", "depth", "num_heads"):
            if getattr(d, key) < 1:
                raise ValueError(f"model.decoder.{key}={getattr(d, key)} must be a positive integer")
        if d.embed_dim % d.num_heads:
            raise ValueError(f"model.decoder.num_heads={d.num_heads} does not divide decoder embed_dim={d.embed_dim}")
        if d.qkv_bias not in QKV_BIAS:
            raise ValueError(f"model.decoder.qkv_bias={d.qkv_bias!r} is not one of {QKV_BIAS}")
        self.mask.validate(e.grid)
        self.target.validate(e.patch_size, d.t_pred_patch_size)
        return self

    def build(self, trunc_init: bool = False) -> MaskedAutoencoderViT:
        return MaskedAutoencoderViT(self, trunc_init=trunc_init)


class MaskedAutoencoderViT(VideoEncoder):
    """Masked autoencoder over spacetime patches, built from a :class:`MAEConfig`.

    Args:
        cfg: encoder, decoder and masking settings.
        trunc_init: the reference's alternative initialisation.
    """

    def __init__(self, cfg: MAEConfig, trunc_init: bool = False) -> None:
        cfg.validate()
        super().__init__(cfg.encoder)
        self.model_cfg = cfg
        d = cfg.decoder
        num_frames, u = self.patch_embed.num_frames, self.patch_embed.t_patch_size
        self.t_pred_patch_size = d.t_pred_patch_size
        self.pred_t_dim = num_frames * d.t_pred_patch_size // u  # target frames
        self.mask_strategy = cfg.mask.strategy
        self.decoder_mask, self.decoder_mask_ratio = cfg.mask.decoder, cfg.mask.decoder_ratio
        p = self.patch_embed.patch_size

        self.decoder_embed = nn.Linear(self.embed_dim, d.embed_dim, bias=d.embed_bias)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d.embed_dim))
        if self.cls_embed:
            # never initialised in the reference: stays zero (kept for parity)
            self.decoder_cls_token = nn.Parameter(torch.zeros(1, 1, d.embed_dim))
        self._register_pos("decoder_pos_embed", d.embed_dim)
        self.decoder_blocks = nn.ModuleList(
            Block(d.embed_dim, d.num_heads, d.mlp_ratio, qkv_bias=d.qkv_bias, norm_eps=d.norm_eps)
            for _ in range(d.depth)
        )
        self.decoder_norm = nn.LayerNorm(d.embed_dim, eps=d.final_norm_eps)
        self.decoder_pred = nn.Linear(d.embed_dim, target_dim(cfg.target, p, self.t_pred_patch_size, self.in_chans))
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

    def make_decoder_noise(
        self, batch: int, generator: torch.Generator | None = None, device=None
    ) -> torch.Tensor | None:
        """Decoder-mask noise (B, L) for this model's decoder strategy; None without decoder masking."""
        return decoder_mask_noise(batch, self.grid, self.decoder_mask, generator=generator, device=device)

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

    def forward_decoder(
        self, latent: torch.Tensor, ids_restore: torch.Tensor, pred_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, len_keep, D) latent -> (B, L, K) predictions, or (B, N, K) for the tokens ``pred_ids``
        (B, N) when the decoder is masked."""
        if pred_ids is not None:
            return self._forward_masked_decoder(latent, ids_restore, pred_ids)
        x = self.decoder_embed(latent)
        B, N, C = x.shape
        L = ids_restore.shape[1]
        x = torch.cat([x, self.mask_token.to(x.dtype).expand(B, L - N, -1)], dim=1)
        x = torch.gather(x, 1, ids_restore.unsqueeze(-1).expand(-1, -1, C))  # unshuffle to token order
        pos, pos_cls = self._pos_tables("decoder_pos_embed")
        x = self._decode(x + pos.to(x.dtype), pos_cls)
        return x[:, 1:] if self.cls_embed else x

    def _forward_masked_decoder(
        self, latent: torch.Tensor, ids_restore: torch.Tensor, pred_ids: torch.Tensor
    ) -> torch.Tensor:
        """VideoMAE V2's decoder masking: the visible tokens plus one mask token at every decoded
        position (visible ones included, so every clip has the same count; the loss then skips them),
        each with its positional embedding; only the mask tokens are read out."""
        x = self.decoder_embed(latent)
        B, N, C = x.shape
        ids_keep = torch.argsort(ids_restore, dim=1)[:, :N]  # the shuffle's first N: visible tokens
        pos, pos_cls = self._pos_tables("decoder_pos_embed")
        pos = pos.to(x.dtype).expand(B, -1, -1)
        x = x + torch.gather(pos, 1, ids_keep.unsqueeze(-1).expand(-1, -1, C))
        queries = self.mask_token.to(x.dtype) + torch.gather(pos, 1, pred_ids.unsqueeze(-1).expand(-1, -1, C))
        x = torch.cat([x, queries], dim=1)  # (B, N + N_dec, C); attention does not care about order
        return self._decode(x, pos_cls, read_last=pred_ids.shape[1])

    def _decode(self, x: torch.Tensor, pos_cls: torch.Tensor | None, read_last: int = 0) -> torch.Tensor:
        """Prepend the decoder's class token (when the model has one), run the blocks, then norm and
        predict every token, or only the last ``read_last``."""
        if self.cls_embed:
            cls = self.decoder_cls_token.expand(x.shape[0], -1, -1).to(x.dtype)
            if pos_cls is not None:
                cls = cls + pos_cls
            x = torch.cat([cls, x], dim=1)
        x = self.run_blocks(x, self.decoder_blocks)  # checkpointed too with grad_checkpointing
        return self.decoder_pred(self.decoder_norm(x[:, -read_last:] if read_last else x))

    def decoded_tokens(self, batch: int, decoder_noise: torch.Tensor | None = None, device=None) -> torch.Tensor | None:
        """(B, N) ascending indices of the tokens the decoder reconstructs, from ``decoder_noise`` (drawn
        when None); None without decoder masking."""
        if self.decoder_mask == "none":
            if decoder_noise is not None:
                raise ValueError("decoder_noise given, but the model has no decoder mask (model.mask.decoder='none')")
            return None
        if decoder_noise is None:
            decoder_noise = self.make_decoder_noise(batch, device=device)
        L = self.num_patches
        if decoder_noise.shape != (batch, L):
            raise ValueError(f"decoder_noise has shape {tuple(decoder_noise.shape)}, expected {(batch, L)}")
        keep = decoder_num_keep(self.decoder_mask_ratio, self.grid, self.decoder_mask)
        return torch.argsort(decoder_noise.to(device), dim=1)[:, :keep].sort(dim=1).values

    def forward(
        self, video: torch.Tensor, mask_ratio: float | None = None, noise: torch.Tensor | None = None,
        decoder_noise: torch.Tensor | None = None,
    ) -> MAEOutput:
        """Mask, encode, decode. ``video``: (B, C, T, H, W), normalised pixels; ``mask_ratio`` defaults to
        the model's ``model.mask.ratio``; ``noise`` and ``decoder_noise`` (B, L) fix the encoder and
        decoder masks (drawn when None)."""
        ratio = self.model_cfg.mask.ratio if mask_ratio is None else mask_ratio
        latent, mask, ids_restore = self.forward_encoder(video, ratio, noise)
        pred_ids = self.decoded_tokens(video.shape[0], decoder_noise, video.device)
        return MAEOutput(self.forward_decoder(latent, ids_restore, pred_ids), mask, ids_restore, pred_ids)
