"""Run by tests/runtime/test_distributed.py under torchrun, 2 gloo processes: three tiny pre-training runs
in one process group, each rank writing what it saw to ``<out>/seen-rank<r>.json``:

- ``no_sync``: DDP with ``accum_iter=2`` as the loop runs it (the first micro-batch under ``no_sync``);
- ``sync``: the same with ``runtime.no_sync`` disabled, so every micro-batch all-reduces;
- ``fsdp_bf16``: FSDP2 with ``train.precision=bf16`` (the mixed-precision policy of ``runtime.shard_fsdp``).

DDP's all-reduces are counted by a communication hook (one call per gradient bucket, ``is_last`` on the
last bucket of a reduction); the FSDP run records the ``fully_shard`` arguments and the dtype a block's
weight has inside the forward pass."""

import contextlib
import json
import sys
from pathlib import Path

from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch.distributed.fsdp as fsdp  # noqa: E402

import maest.train.pretrain as pre  # noqa: E402
from maest import runtime  # noqa: E402
from maest.overrides import apply_overrides  # noqa: E402
from maest.train.recipes import get_preset  # noqa: E402
from tests.conftest import RandomClips  # noqa: E402


def _cfg(out: Path, *extra: str):
    return apply_overrides(get_preset("tiny"), [
        f"train.output_dir={out}", "train.tensorboard=false", "train.progress=false", "train.log_every=1",
        "train.epochs=1", "train.max_steps=2", "train.batch_size=1", "train.accum_iter=2", "data.num_workers=0",
        "train.device=cpu", "train.precision=fp32", *extra]).validate()


def main(out: str) -> None:
    out_dir = Path(out)
    info = runtime.init("cpu")
    seen: dict = {"reductions": [], "fully_shard": [], "forward_dtypes": []}
    real_wrap, real_no_sync, real_shard, real_train = runtime.wrap_ddp, runtime.no_sync, fsdp.fully_shard, pre.train

    def counting_wrap(model, info):
        ddp = real_wrap(model, info)

        def hook(state, bucket):
            seen["reductions"].append(bucket.is_last())
            return default_hooks.allreduce_hook(None, bucket)

        ddp.register_comm_hook(None, hook)
        return ddp

    def spying_shard(module, **kw):
        mp = kw.get("mp_policy")
        seen["fully_shard"].append({
            "module": type(module).__name__, "reshard_after_forward": kw.get("reshard_after_forward", True),
            "param_dtype": str(mp.param_dtype), "reduce_dtype": str(mp.reduce_dtype),
            "cast_forward_inputs": mp.cast_forward_inputs})
        return real_shard(module, **kw)

    def spying_train(cfg, model, *args, **kwargs):
        fc1 = model.blocks[0].mlp.fc1
        handle = fc1.register_forward_pre_hook(lambda m, a: seen["forward_dtypes"].append(str(m.weight.dtype)))
        try:
            return real_train(cfg, model, *args, **kwargs)
        finally:
            handle.remove()

    runtime.wrap_ddp, pre.train = counting_wrap, spying_train
    try:
        results = {}
        results["no_sync"] = pre._run(_cfg(out_dir / "no_sync"), RandomClips(n=8), info)
        results["no_sync_reductions"], seen["reductions"] = seen["reductions"], []
        runtime.no_sync = lambda model, sync: contextlib.nullcontext()
        results["sync"] = pre._run(_cfg(out_dir / "sync"), RandomClips(n=8), info)
        results["sync_reductions"], seen["reductions"] = seen["reductions"], []
        runtime.no_sync, runtime.wrap_ddp = real_no_sync, real_wrap
        fsdp.fully_shard = spying_shard
        seen["forward_dtypes"] = []
        results["fsdp_bf16"] = pre._run(_cfg(out_dir / "fsdp_bf16", "train.parallel=fsdp", "train.precision=bf16",
                                             "train.accum_iter=1", "train.batch_size=2"), RandomClips(n=8), info)
        results.update(fully_shard=seen["fully_shard"], forward_dtypes=sorted(set(seen["forward_dtypes"])))
        (out_dir / f"seen-rank{info.rank}.json").write_text(json.dumps(results, default=str))
    finally:
        runtime.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
