"""Training-step machinery shared by the jobs: precision contexts, deterministic masking noise, the
MAE pre-training loss step, and per-step seeding of data augmentation for exact resume."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from maest.data.loader import mix_seed
from maest.losses import mae_target, reconstruction_loss


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` -> bf16 on CUDA with bf16 support and on CPUs with native bf16 (AVX512-BF16/AMX),
    fp32 otherwise."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    is_bf16_cpu = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    is_amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return "bf16" if (is_bf16_cpu or is_amx) else "fp32"


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def masking_noise(model: nn.Module, video_index: torch.Tensor, seed: int, step: int) -> torch.Tensor:
    """Masking noise (B, L) for a batch of clips, each row a pure function of (seed, step, video,
    clip of that video). A resumed run masks exactly as an uninterrupted one without saving RNG
    state, and the masks do not depend on how the global batch is split over processes.

    Args:
        video_index: (B,) dataset index of each clip's video; repeated clips of a video share it and are
            told apart by their order in the batch.
    """
    seen: dict[int, int] = {}
    rows = []
    for v in video_index.tolist():
        clip = seen.get(v, 0)
        seen[v] = clip + 1
        g = torch.Generator().manual_seed(mix_seed(seed, step, v, clip))
        rows.append(model.make_noise(1, generator=g))
    return torch.cat(rows)


def mae_loss(
    model: nn.Module, video: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None, norm_pix: bool
) -> torch.Tensor:
    """Forward the (possibly wrapped) MAE and return the reconstruction loss (fp32 scalar)."""
    core = unwrap(model)
    out = model(video, mask_ratio, noise)
    target = mae_target(video, *core.target_spec, norm_pix=norm_pix)
    return reconstruction_loss(out.pred, target, out.mask)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP / torch.compile wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


class SeededItems(Dataset):
    """Seeds Python, NumPy and torch RNGs from (seed, epoch, index) before each item, so random
    augmentation depends on neither worker count nor where a run was resumed."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        s = mix_seed(self.seed, self.epoch, index)
        random.seed(s)
        np.random.seed(s % (2**32))
        torch.manual_seed(s)
        return self.dataset[index]
