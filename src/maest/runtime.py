"""What a job runs on: the device, the process group, numeric precision and seeds.

The only importer of ``torch.distributed``: process-group setup from torchrun's environment,
rank helpers, model wrapping (DDP, or FSDP2's ``fully_shard`` per block), full-state-dict gathering for
checkpoints, and an orderly shutdown."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import warnings
from dataclasses import dataclass

import numpy as np
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


PARALLEL = ("ddp", "fsdp")


def shard_fsdp(model: nn.Module, info: DistInfo) -> nn.Module:
    """FSDP2: shard each transformer block, then the rest, over all ranks (in place). Build the
    optimizer afterwards: sharding replaces the parameters with DTensors."""
    if not info.enabled:
        return model
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    # the MAE returns slices of its decoder output; nothing modifies them in place, so FSDP2's
    # warning about views losing the pre-backward hook does not apply
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    mesh = init_device_mesh("cuda" if info.device.startswith("cuda") else "cpu", (info.world_size,))
    for name in ("blocks", "decoder_blocks"):
        for block in getattr(model, name, []):
            fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def is_fsdp(model: nn.Module) -> bool:
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:
        return False
    return isinstance(model, FSDPModule)


def state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Full (unsharded, CPU) model and optimizer state. Under FSDP every rank must call this (it
    gathers); rank 0 gets the tensors."""
    if not is_fsdp(model):
        return model.state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=opts), get_optimizer_state_dict(model, optimizer, options=opts)


def load_state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict, optim_state: dict) -> None:
    """Inverse of :func:`state_dicts`; under FSDP each rank loads the full state and keeps its shard."""
    if not is_fsdp(model):
        from maest.runs.checkpoint import load_model_weights

        load_model_weights(model, model_state)
        optimizer.load_state_dict(optim_state)
        return
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, model_state, options=opts)
    set_optimizer_state_dict(model, optimizer, optim_state, options=opts)


def wrap_ddp(model: nn.Module, info: DistInfo) -> nn.Module:
    """DDP over all ranks; a model already sharded by FSDP is returned as is."""
    if not info.enabled or is_fsdp(model):
        return model
    ids = [info.local_rank] if info.device.startswith("cuda") else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


def all_reduce_max(value: torch.Tensor) -> torch.Tensor:
    """The largest ``value`` over all ranks (itself when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value


def no_sync(model: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """DDP's ``no_sync()`` when ``sync`` is False (an accumulation micro-batch that is not the last: its
    gradients stay local, saving one all-reduce), else nothing; also through a ``torch.compile`` wrapper."""
    ddp = getattr(model, "_orig_mod", model)
    if sync or not isinstance(ddp, nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return ddp.no_sync()


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


def seed_host(seed: int) -> None:
    """Seed Python's, NumPy's and torch's CPU generators: what data augmentation draws from. On the host
    this is torch.manual_seed's effect without its cost (70 us a call, most of it seeding accelerator
    backends; once per item it was a fifth of a small clip's loading time)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)


def to_device(x: torch.Tensor, device: str) -> torch.Tensor:
    """``x`` (made on the host) on ``device``: through pinned memory and without waiting on a GPU."""
    if device == "cpu":
        return x
    return x.pin_memory().to(device, non_blocking=True)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP / torch.compile wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


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


def mix_seed(*parts: int) -> int:
    """A stable 63-bit seed from integers (``hash()`` is salted per process; this is not)."""
    digest = hashlib.blake2b(",".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def dist_rank_world() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) when none is initialised."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1
