"""Run by tests/runtime/test_distributed.py under torchrun (or directly for the single-process baseline):
pre-trains the tiny model on in-memory clips and writes each rank's final parameters."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import maest.train.pretrain as pre  # noqa: E402
from maest.overrides import apply_overrides
from maest.train.recipes import get_preset
from tests.conftest import RandomClips  # noqa: E402


def main(out: str, batch_size: int, parallel: str, device: str = "cpu") -> None:
    out_dir = Path(out)
    real_train = pre.train

    def train_and_dump(cfg, model, *args, **kwargs):
        summary = real_train(cfg, model, *args, **kwargs)
        from maest.runtime import is_fsdp

        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        # under FSDP each rank saves its gathered full copy, so "ranks agree" is checked on full tensors
        state = {k: (v.full_tensor() if is_fsdp(model) else v).detach().clone() for k, v in model.state_dict().items()}
        torch.save(state, out_dir / f"params-rank{rank}.pt")
        return summary

    pre.train = train_and_dump
    cfg = apply_overrides(get_preset("tiny"), [
        f"train.output_dir={out_dir}", "train.tensorboard=false", "train.progress=false", "train.log_every=1",
        "train.epochs=2", "train.max_steps=6", f"train.batch_size={batch_size}", "data.num_workers=0",
        f"train.parallel={parallel}", f"train.device={device}"])  # cpu: gloo, on a GPU machine too
    pre.run(cfg, dataset=RandomClips(n=8))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:5])  # out, batch size, parallel[, device]
