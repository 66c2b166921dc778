"""The clips per second one GPU consumes, from a model's FLOPs: the "clips/s needed per GPU" column of
``maest bench-data``, set beside the loader's measured clips/s.

needed = GPU bf16 dense peak x MFU / training FLOPs per clip, the training FLOPs being 3 x the forward's
(backward = 2 x forward) as :func:`maest.bench.step.forward_flops` counts them analytically at the model's
own mask ratio (maest embeds only the visible patches). Defaults: ViT-B 16x224 MAE (``mae_vit_base_patch16``,
90% masking: 267 GFLOP per clip) on an H100 (989 TFLOP/s dense bf16) at 40% MFU: about 1480 clips/s. The
peaks are the vendors' dense (no sparsity) bf16 figures; the MFU is an assumption, not a measurement (no GPU
has run maest), 40% being a usual figure for ViT training with flash attention.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

# dense bf16 tensor-core peak, FLOP/s (vendor data sheets, SXM parts)
GPU_BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "B200": 2250e12, "L40S": 362e12}
DEFAULT_GPU, DEFAULT_MFU, DEFAULT_MODEL = "H100", 0.4, "mae_vit_base_patch16"


@dataclass(frozen=True)
class Feed:
    """What one GPU training ``model`` consumes."""

    model: str
    gpu: str
    mfu: float
    gflop_per_clip: float  # forward + backward
    clips_per_s: float

    def describe(self) -> str:
        return (f"clips/s needed per GPU: {self.clips_per_s:.0f} ({self.model}, {self.gflop_per_clip:.0f} GFLOP per "
                f"clip forward+backward, on {self.gpu} at {GPU_BF16_PEAK[self.gpu] / 1e12:.0f} TFLOP/s bf16 x "
                f"{self.mfu:.0%} MFU)")


@functools.cache
def train_gflop_per_clip(model: str) -> float:
    """Forward + backward GFLOP of one clip of ``model`` (a registered MAE) at its own mask ratio; the model is
    built on the ``meta`` device, so nothing is allocated."""
    from maest.bench.step import build_model, forward_flops

    with torch.device("meta"):
        m = build_model(model)
    return 3 * forward_flops(m, m.model_cfg.mask.ratio, embed_all=False) / 1e9


def feed(model: str = DEFAULT_MODEL, gpu: str = DEFAULT_GPU, mfu: float = DEFAULT_MFU) -> Feed:
    """The clips/s one ``gpu`` at ``mfu`` needs to train ``model``."""
    if gpu not in GPU_BF16_PEAK:
        raise ValueError(f"--gpu {gpu} is not one of {', '.join(GPU_BF16_PEAK)}")
    if not 0 < mfu <= 1:
        raise ValueError(f"--mfu {mfu} must be in (0, 1]")
    gflop = train_gflop_per_clip(model)
    return Feed(model, gpu, mfu, gflop, GPU_BF16_PEAK[gpu] * mfu / (gflop * 1e9))


def columns(need: Feed, clips_per_s: float) -> dict[str, float]:
    """A result row's columns: the clips/s needed per GPU, and the fraction of a GPU the measured rate feeds."""
    return {"clips_per_s_needed_per_gpu": need.clips_per_s, "gpus_fed": clips_per_s / need.clips_per_s}
