"""``maest pretrain DATA``: MAE-ST pre-training."""

from __future__ import annotations

import argparse
import json
import os

from maest.commands.common import add_config_args, resolve_config
from maest.config import PretrainConfig
from maest.presets import preset


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="?", help="CSV list (path label), folder of class folders, or folder of videos")
    p.add_argument("--output-dir", help="run folder (checkpoints, metrics.jsonl, tensorboard)")
    p.add_argument("--resume", nargs="?", const="auto",
                   help="resume from a checkpoint (no value: newest in the run folder)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoints and metrics of an earlier run in the run folder")
    add_config_args(p, preset, "vit_b_k400_pretrain", "train.epochs=10")


def main(args: argparse.Namespace) -> int:
    from maest.pretrain import run

    cfg = resolve_config(args, PretrainConfig, preset)
    if args.data:
        cfg.data.source = args.data
    if args.output_dir:
        cfg.train.output_dir = args.output_dir
    if args.resume:
        cfg.train.resume = args.resume
    if args.overwrite:
        cfg.train.overwrite = True
    if not cfg.data.source:
        raise ValueError("no training data: pass a CSV, a class-folder root or a video folder as DATA")
    summary = run(cfg)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun only the main process reports
    print(json.dumps({k: summary[k] for k in ("steps", "loss", "checkpoint", "lr", "precision")}))
    if summary["skipped"]:
        print(f"skipped {len(summary['skipped'])} unreadable video reads ({len(set(summary['skipped']))} files)")
    return 0
