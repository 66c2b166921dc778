"""Numeric precision of a job: which precision ``auto`` means on a device, and the autocast context."""

from __future__ import annotations

import contextlib

import torch


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
