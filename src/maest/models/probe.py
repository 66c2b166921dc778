"""Probes on a frozen encoder: MAE's linear probe (BatchNorm without affine, then a linear layer, on
the pooled features; He et al., arXiv:2111.06377 §A.3) and an attentive probe (one cross-attention
pooling layer with a learned query, then a linear layer), which reads all tokens instead of their mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from maest.models.encoder import trunc_normal_


class LinearProbe(nn.Module):
    """(B, D) pooled features -> (B, K): BatchNorm1d(affine=False, eps 1e-6) then linear."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim, affine=False, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        trunc_normal_(self.head.weight, std=0.01)  # MAE's linear-probe init
        nn.init.zeros_(self.head.bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn(feats))


class AttentiveProbe(nn.Module):
    """(B, N, D) tokens -> (B, K): a learned query attends over the tokens (multi-head), the result
    goes through LayerNorm and a linear head.

    Args:
        dim: token width D.
        num_classes: K.
        num_heads: attention heads (D must divide).
    """

    def __init__(self, dim: int, num_classes: int, num_heads: int = 4) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by the probe's num_heads={num_heads}")
        self.num_heads = num_heads
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        trunc_normal_(self.query)
        trunc_normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        B, N, D = tokens.shape
        h = self.num_heads
        # (B, N, 2D) -> 2 x (B, heads, N, D/heads)
        k, v = self.kv(tokens).view(B, N, 2, h, D // h).permute(2, 0, 3, 1, 4)
        q = self.query.expand(B, -1, -1).view(B, 1, h, D // h).transpose(1, 2)  # (B, heads, 1, D/heads)
        x = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, D)
        return self.head(self.norm(self.proj(x)))


class ProbedEncoder(nn.Module):
    """A frozen classifier (:class:`~maest.models.vit.VisionTransformer`) feeding a trainable probe.

    The encoder stays in eval mode (no dropout or drop path) and runs without gradients; its own head
    is unused. ``kind`` "linear" probes the pooled, normalised features; "attentive" the final-norm tokens.
    """

    def __init__(self, encoder: nn.Module, kind: str, num_classes: int) -> None:
        super().__init__()
        if kind not in ("linear", "attentive"):
            raise ValueError(f"probe kind {kind!r} is not 'linear' or 'attentive'")
        self.kind = kind
        self.encoder = encoder.requires_grad_(False)
        self.model_cfg = getattr(encoder, "model_cfg", None)  # the ClassifierConfig (probe included)
        dim = encoder.embed_dim
        self.probe = LinearProbe(dim, num_classes) if kind == "linear" else AttentiveProbe(dim, num_classes)

    def train(self, mode: bool = True) -> ProbedEncoder:
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, K) logits."""
        with torch.no_grad():
            tokens = self.encoder.forward_features(video)
            feats = self.encoder.pool(tokens) if self.kind == "linear" else self.encoder.norm(tokens)
        return self.probe(feats.float())
