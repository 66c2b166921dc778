"""Mixup / CutMix on video batches with label smoothing, as the reference fine-tuning uses (timm's
``Mixup`` in "batch" mode, arXiv:2205.09113 §4): one mixing coefficient per batch, each sample paired
with the flipped batch (``x.flip(0)``), and the CutMix box shared by every frame of a clip.

Randomness comes from an explicit ``torch.Generator`` so a resumed run mixes exactly as an
uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """(B,) int labels -> (B, K) targets with ``1 - smoothing + smoothing/K`` on the label, ``smoothing/K``
    elsewhere (timm's convention)."""
    off = smoothing / num_classes
    out = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return out.scatter_(1, labels.long().unsqueeze(1), 1.0 - smoothing + off)


def cutmix_box(height: int, width: int, lam: float, generator: torch.Generator) -> tuple[int, int, int, int]:
    """A box covering about ``1 - lam`` of the frame, centred uniformly (clipped at the borders).

    Returns:
        (y0, y1, x0, x1).
    """
    ratio = math.sqrt(1.0 - lam)
    ch, cw = int(height * ratio), int(width * ratio)
    cy = int(torch.randint(height, (), generator=generator))
    cx = int(torch.randint(width, (), generator=generator))
    return max(cy - ch // 2, 0), min(cy + ch // 2, height), max(cx - cw // 2, 0), min(cx + cw // 2, width)


@dataclass
class MixupConfig:
    """Mixup / CutMix with label smoothing (``mix.*``; 0 alphas or prob disable mixing).

    Attributes:
        mixup: Beta(alpha, alpha) for mixup; 0 disables it.
        cutmix: Beta(alpha, alpha) for cutmix; 0 disables it.
        prob: probability of mixing a batch at all.
        switch_prob: with both enabled, probability of cutmix instead of mixup.
        smoothing: label smoothing applied to both targets.
    """

    mixup: float = 0.8
    cutmix: float = 1.0
    prob: float = 1.0
    switch_prob: float = 0.5
    smoothing: float = 0.1

    def validate(self) -> MixupConfig:
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"mix.smoothing={self.smoothing} must be in [0, 1)")
        for name in ("mixup", "cutmix"):
            if not getattr(self, name) >= 0.0 or getattr(self, name) == float("inf"):
                raise ValueError(f"mix.{name}={getattr(self, name)} must be a finite alpha >= 0 (0 disables {name})")
        for name in ("prob", "switch_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"mix.{name}={getattr(self, name)} must be a probability in [0, 1]")
        return self

    def build(self, num_classes: int) -> Mixup:
        return Mixup(self, num_classes)


@dataclass
class Mixup:
    """Batch-level mixup / cutmix of ``cfg`` (:class:`MixupConfig`) for ``num_classes`` classes."""

    cfg: MixupConfig
    num_classes: int

    @property
    def active(self) -> bool:
        return self.cfg.prob > 0 and (self.cfg.mixup > 0 or self.cfg.cutmix > 0)

    def _draw(self, generator: torch.Generator) -> tuple[float, bool]:
        """(lam, use_cutmix) for one batch."""
        c = self.cfg
        if float(torch.rand((), generator=generator)) >= c.prob:
            return 1.0, False
        use_cutmix = c.cutmix > 0 and (c.mixup <= 0 or float(torch.rand((), generator=generator)) < c.switch_prob)
        alpha = c.cutmix if use_cutmix else c.mixup
        # Beta(a, a) from two Gammas drawn with the explicit generator
        a = torch.tensor([alpha, alpha], dtype=torch.float64)
        g = torch._standard_gamma(a.expand(1, 2).contiguous(), generator=generator)[0]
        return float(g[0] / g.sum()), use_cutmix

    def __call__(
        self, video: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix a batch.

        Args:
            video: (B, C, T, H, W); B must be even for the flipped pairing to be a permutation of pairs
                (timm requires it; odd B simply pairs the middle sample with itself).
            labels: (B,) class indices.
            generator: CPU generator for the mixing draws.

        Returns:
            mixed video (B, C, T, H, W) and soft targets (B, K) whose rows sum to 1.
        """
        lam, use_cutmix = self._draw(generator)
        if lam < 1.0:
            if use_cutmix:
                H, W = video.shape[-2:]
                y0, y1, x0, x1 = cutmix_box(H, W, lam, generator)
                video = video.clone()
                # one box for all T frames of a clip
                video[..., y0:y1, x0:x1] = video.flip(0)[..., y0:y1, x0:x1]
                lam = 1.0 - (y1 - y0) * (x1 - x0) / (H * W)  # correct lam to the clipped box area
            else:
                video = video * lam + video.flip(0) * (1.0 - lam)
        y = smooth_one_hot(labels, self.num_classes, self.cfg.smoothing)
        return video, y * lam + y.flip(0) * (1.0 - lam)
