"""Transformer building blocks shared by the encoder and decoder.

Names follow the official MAE-ST checkpoints (``attn.q/k/v/proj``, ``mlp.fc1/fc2``, ``norm1/norm2``) so
those state dicts load with ``strict=True``. Attention goes through
``F.scaled_dot_product_attention``, which picks flash / memory-efficient kernels on GPU and a fused
kernel on CPU; it matches the reference's explicit softmax to fp32 rounding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

QKV_BIAS = ("qkv", "qv", "none")


def qkv_bias_form(value: str | bool) -> str:
    """The q/k/v bias form; maest 0.1 configs stored a bool (True: all three)."""
    if isinstance(value, bool):
        return "qkv" if value else "none"
    return value


_EXPLICIT_MATH = False
_CPU_SDPA_MIN_TOKENS = 512  # below this many tokens CPU attention uses explicit math (see Attention)


@contextlib.contextmanager
def reference_attention() -> Iterator[None]:
    """Compute as the reference does: attention as q @ k^T * scale, softmax, @ v with three separate
    projections instead of SDPA, and the patch projection as a Conv3d instead of a GEMM. For
    side-by-side speed comparisons and parity checks."""
    global _EXPLICIT_MATH
    previous, _EXPLICIT_MATH = _EXPLICIT_MATH, True
    try:
        yield
    finally:
        _EXPLICIT_MATH = previous


def reference_math_enabled() -> bool:
    """True inside :func:`reference_attention`."""
    return _EXPLICIT_MATH


class Attention(nn.Module):
    """Multi-head self-attention with separate q, k, v projections (as in the official checkpoints).

    Args:
        dim: token width D.
        num_heads: number of heads; D must be divisible by it.
        qkv_bias: which of q, k, v carry a learnable bias: "qkv", "qv" (VideoMAE: no key bias, which
            softmax would ignore anyway) or "none".
        proj_drop: dropout after the output projection.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: str = "qkv", proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by num_heads={num_heads}; pick a divisor of {dim}")
        if qkv_bias not in QKV_BIAS:
            raise ValueError(f"qkv_bias={qkv_bias!r} is not one of {QKV_BIAS}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias != "none")
        self.k = nn.Linear(dim, dim, bias=qkv_bias == "qkv")
        self.v = nn.Linear(dim, dim, bias=qkv_bias != "none")
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self._qkv_cache: tuple | None = None  # (key, fused weight and bias): see _qkv_params

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, D) -> (B, N, D)."""
        B, N, D = x.shape
        if _EXPLICIT_MATH:
            return self._reference_forward(x)
        qkv = F.linear(x, *self._qkv_params(x))
        # (B, N, 3D) -> 3 x (B, heads, N, head_dim)
        q, k, v = qkv.view(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if x.device.type == "cpu" and N <= _CPU_SDPA_MIN_TOKENS:
            # short sequences (the encoder's visible tokens): explicit math beats the CPU flash kernel
            # in bf16 (2.8 vs 7.0 ms fwd+bwd for ViT-B at 90% masking); softmax in fp32 as SDPA does
            attn = (q @ k.transpose(-2, -1)) * self.head_dim**-0.5
            x = attn.float().softmax(dim=-1).to(v.dtype) @ v
        else:
            x = F.scaled_dot_product_attention(q, k, v)
        x = x.transpose(1, 2).reshape(B, N, D)
        return self.proj_drop(self.proj(x))

    def _qkv_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The (3D, D) weight and (3D,) bias of one GEMM for q, k and v; the weights stay separate
        parameters (official checkpoint names). While training they are concatenated per forward (the
        concatenation is part of the autograd graph); without gradients (evaluation, features, prediction)
        the concatenation, cast to the autocast dtype as ``F.linear`` would cast it, is kept until a
        weight changes, so repeated forwards neither concatenate nor cast (the same numbers either way)."""
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            if self._qkv_cache is not None:
                self._qkv_cache = None  # a stale copy would only hold memory while training
            return self._concat_qkv()
        dev = x.device.type
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else None
        params = [p for m in (self.q, self.k, self.v) for p in (m.weight, m.bias) if p is not None]
        if any(p.is_inference() for p in params):  # made under inference_mode: no version counter to key on
            return self._concat_qkv()
        key = (dtype, *((p.data_ptr(), p._version, p.dtype, p.device) for p in params))
        if self._qkv_cache is None or self._qkv_cache[0] != key:
            fused = self._concat_qkv()
            if dtype is not None:  # autocast casts floating tensors other than float64
                fused = tuple(t if t is None or t.dtype in (dtype, torch.float64) else t.to(dtype) for t in fused)
            self._qkv_cache = (key, fused)
        return self._qkv_cache[1]

    def _concat_qkv(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        q, k, v = self.q, self.k, self.v
        bias = None
        if q.bias is not None:
            k_bias = k.bias if k.bias is not None else torch.zeros_like(q.bias)
            bias = torch.cat([q.bias, k_bias, v.bias])
        return torch.cat([q.weight, k.weight, v.weight]), bias

    def _reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q = self.q(x).view(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k(x).view(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v(x).view(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        attn = (q @ k.transpose(-2, -1)) * self.head_dim**-0.5
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, D)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout (timm's Mlp, parameter names fc1/fc2)."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth: zero a sample's residual branch with probability ``p`` during training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)).

    Args:
        dim: token width D.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width as a multiple of D.
        qkv_bias: "qkv", "qv" or "none" (see :class:`Attention`).
        drop_path: stochastic depth rate for this block.
        drop: dropout inside the MLP and after the attention projection.
        norm_eps: LayerNorm epsilon (the official factories use 1e-6).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: str = "qkv",
        drop_path: float = 0.0,
        drop: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, proj_drop=drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))
