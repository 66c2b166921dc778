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

    Backend: NCCL on CUDA (bound to this process's GPU through ``device_id``), gloo on CPU.

    Raises:
        RuntimeError: on CUDA, a local rank with no GPU of its own (more processes per node than GPUs).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.startswith("cuda"):
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise RuntimeError(f"local rank {local_rank} has no GPU: this machine has {count} CUDA device(s); start "
                               f"at most {count} process(es) per node (torchrun --nproc_per_node={count}) or use "
                               "train.device=cpu")
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        if dev.startswith("cuda"):
            dist.init_process_group(backend="nccl", device_id=torch.device(dev))
        else:
            dist.init_process_group(backend="gloo")
    return DistInfo(rank, world, local_rank, dev)


PARALLEL = ("ddp", "fsdp")


def shard_fsdp(model: nn.Module, info: DistInfo, precision: str = "fp32") -> nn.Module:
    """FSDP2: shard each transformer block, then the rest, over all ranks (in place). Build the
    optimizer afterwards: sharding replaces the parameters with DTensors.

    With ``precision="bf16"`` the blocks gather bf16 parameters and reduce gradients in fp32 (half the
    gather traffic; optimizer state and the sharded weights stay fp32); the root keeps the inputs'
    dtypes (the masking noise must not be rounded) and its parameters gathered after the forward pass
    (``reshard_after_forward=False``: the backward pass needs them straight away)."""
    if not info.enabled:
        return model
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    # the MAE returns slices of its decoder output; nothing modifies them in place, so FSDP2's
    # warning about views losing the pre-backward hook does not apply
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    mesh = init_device_mesh("cuda" if info.device.startswith("cuda") else "cpu", (info.world_size,))
    policy, root_policy = MixedPrecisionPolicy(), MixedPrecisionPolicy()
    if precision == "bf16":
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        root_policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32,
                                           cast_forward_inputs=False)
    for name in ("blocks", "decoder_blocks"):
        for block in getattr(model, name, []):
            fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=root_policy, reshard_after_forward=False)
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


_CONTROL: list = []  # the host-side process group of any_rank (made on first use, by every rank at once)


def any_rank(*flags: bool) -> tuple[bool, ...]:
    """Each flag OR-ed over all ranks (itself when not distributed): decisions every rank must take at the
    same step (stop on a signal, save on a timer). Under NCCL the flags travel over a gloo group on the
    host, so no GPU stream waits; every rank must call it at the same point."""
    if not (dist.is_available() and dist.is_initialized()):
        return tuple(flags)
    if not _CONTROL:
        _CONTROL.append(None if "gloo" in str(dist.get_backend()) else dist.new_group(backend="gloo"))
    value = torch.tensor([int(f) for f in flags], dtype=torch.int32)
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=_CONTROL[0])
    return tuple(bool(v) for v in value.tolist())


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
    _CONTROL.clear()


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
    fp32 otherwise. fp32 on an Ampere or newer GPU turns on TF32 for matmuls and convolutions (see
    :func:`allow_tf32`)."""
    if precision == "auto" and device.startswith("cuda"):
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if precision != "auto":
        if precision == "fp32":
            allow_tf32(device)
        return precision
    is_bf16_cpu = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    is_amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return "bf16" if (is_bf16_cpu or is_amx) else "fp32"


def allow_tf32(device: str) -> bool:
    """On an Ampere or newer GPU, let fp32 matmuls and convolutions use TF32 tensor cores
    (``torch.set_float32_matmul_precision("high")``, cuDNN's ``allow_tf32``): several times the fp32
    rate, with inputs rounded to 10-bit mantissas and fp32 sums. Process-wide; nothing changes on a CPU
    or an older GPU. Returns whether it was turned on."""
    if not device.startswith("cuda") or torch.cuda.get_device_capability(device)[0] < 8:
        return False
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True
    return True


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
