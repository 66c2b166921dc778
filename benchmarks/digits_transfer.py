"""Does MAE-ST pre-training help? A CPU-sized transfer experiment on moving digits.

Writes a moving-digits set (label = digit x direction, 10 classes), pre-trains a small MAE-ST on all
training videos (labels unused), then fine-tunes the same classifier twice with an identical budget on
the first ``--labelled`` training videos, once from the MAE weights and once from random
initialisation, and tests both on the held-out quarter with clips x crops views.
Prints and writes ``results.json``.

The MAE reconstructs raw pixels (``norm_pix_loss=false``): on these low-contrast digits over smooth
backgrounds, per-patch normalised targets gave features that probed worse than a random encoder.

    python benchmarks/digits_transfer.py --out /tmp/digits_transfer --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import torch

from maest.config import apply_overrides
from maest.data import write_moving_digits
from maest.evaluate import run_test
from maest.finetune import run as finetune
from maest.finetune_config import get_finetune_preset
from maest.presets import get_preset
from maest.pretrain import run as pretrain

# geometry shared by the MAE and the classifier: 48 px, 8 frames, 8 px patches -> 4 x 6 x 6 = 144 tokens
GEOMETRY = ["img_size=48", "patch_size=8", "num_frames=8", "embed_dim=96", "depth=4", "num_heads=3"]
QUIET = ["train.progress=false", "train.tensorboard=false", "data.num_workers=0", "train.precision=fp32"]


def pretrain_cfg(data: Path, out: Path, epochs: int, seed: int):
    cfg = get_preset("demo")
    return apply_overrides(cfg, [
        f"data.source={data}", f"train.output_dir={out}", f"train.epochs={epochs}", f"train.seed={seed}",
        *(f"model.{g}" for g in GEOMETRY), "data.repeat_aug=2", "train.batch_size=8", "train.mask_ratio=0.9",
        "train.norm_pix_loss=false",
        "optim.blr=1e-2", "optim.warmup_epochs=2", "train.keep_checkpoints=1", *QUIET,
    ])


def finetune_cfg(data: Path, val: Path, out: Path, epochs: int, seed: int, init: str):
    cfg = get_finetune_preset("demo_finetune")
    cfg.init = init
    return apply_overrides(cfg, [
        f"data.source={data}", f"data.val_source={val}", f"train.output_dir={out}", f"train.epochs={epochs}",
        f"train.seed={seed}", *(f"model.{g}" for g in GEOMETRY), "train.keep_checkpoints=1", *QUIET,
    ])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/digits_transfer")
    p.add_argument("--videos", type=int, default=600, help="videos in all (a quarter is the test split)")
    p.add_argument("--labelled", type=int, default=120, help="training videos whose labels fine-tuning uses")
    p.add_argument("--pretrain-epochs", type=int, default=30)
    p.add_argument("--finetune-epochs", type=int, default=30)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--clips", type=int, default=2)
    p.add_argument("--crops", type=int, default=3)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 avoids OpenMP spin-wait collapse when the CPU is shared)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    t0 = time.perf_counter()
    paths = write_moving_digits(out / "data", num_videos=args.videos, num_frames=16, size=48, digit_scale=3)
    labelled = out / "data" / "train_labelled.csv"
    labelled.write_text("".join(paths["train"].read_text().splitlines(keepends=True)[: args.labelled]))
    results = {"args": vars(args), "runs": []}
    for seed in args.seeds:
        pre = pretrain(pretrain_cfg(paths["train"], out / f"s{seed}/pretrain", args.pretrain_epochs, seed))
        row = {"seed": seed, "pretrain_loss": pre["loss"]}
        for arm, init in (("mae", pre["checkpoint"]), ("scratch", "")):
            run_dir = out / f"s{seed}/{arm}"
            ft = finetune(finetune_cfg(labelled, paths["val"], run_dir, args.finetune_epochs, seed, init))
            res = run_test(ft["checkpoint"], str(paths["val"]), run_dir / "test", clips=args.clips,
                           crops=args.crops, num_workers=0, precision="fp32", device="cpu")
            row[arm] = {"top1": res["top1"], "top5": res["top5"], "final_loss": ft["loss"],
                        "val_top1_per_epoch": [v["val_top1"] for v in ft["val"]]}
            print(f"seed {seed} {arm:8s} test top-1 {res['top1']:.1f}%  top-5 {res['top5']:.1f}%", flush=True)
        results["runs"].append(row)
    for arm in ("mae", "scratch"):
        for metric in ("top1", "top5"):
            results[f"{arm}_{metric}_mean"] = statistics.mean(r[arm][metric] for r in results["runs"])
    results["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "runs"} | {
        "per_seed": [(r["seed"], r["mae"]["top1"], r["scratch"]["top1"]) for r in results["runs"]]}))


if __name__ == "__main__":
    main()
