"""``maest finetune TRAIN [--val VAL] --init PRETRAIN_CKPT``: fine-tune a video ViT classifier."""

from __future__ import annotations

import argparse
import json

from maest.commands.common import add_config_args, resolve_config
from maest.finetune_config import FinetuneConfig, preset


def add_run_args(p: argparse.ArgumentParser, default_preset: str) -> None:
    """Arguments shared by ``finetune`` and ``linprobe``."""
    p.add_argument("data", nargs="?", help="training CSV list (path label) or folder of class folders")
    p.add_argument("--val", help="validation list or class-folder root, evaluated after every epoch")
    p.add_argument("--init", help="pre-training checkpoint to start from (omit to train from scratch)")
    p.add_argument("--output-dir", help="run folder (checkpoints, metrics.jsonl, tensorboard)")
    p.add_argument("--resume", nargs="?", const="auto",
                   help="resume from a checkpoint (no value: newest in the run folder)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoints and metrics of an earlier run in the run folder")
    add_config_args(p, preset, default_preset, "model.num_classes=174")


def resolve_run_config(args: argparse.Namespace) -> FinetuneConfig:
    cfg: FinetuneConfig = resolve_config(args, FinetuneConfig, preset)
    for value, section, key in ((args.data, cfg.data, "source"), (args.val, cfg.data, "val_source"),
                                (args.init, cfg, "init"), (args.output_dir, cfg.train, "output_dir"),
                                (args.resume, cfg.train, "resume"), (args.overwrite, cfg.train, "overwrite")):
        if value:
            setattr(section, key, value)
    if not cfg.data.source:
        raise ValueError("no training data: pass a CSV list or a class-folder root as DATA")
    return cfg


def print_summary(summary: dict) -> None:
    print(json.dumps({k: summary[k] for k in ("steps", "loss", "checkpoint", "lr", "precision", "val")}))
    if summary["skipped"]:
        print(f"skipped {len(summary['skipped'])} unreadable video reads ({len(set(summary['skipped']))} files)")


def configure(p: argparse.ArgumentParser) -> None:
    add_run_args(p, "vit_l_k400_finetune")


def main(args: argparse.Namespace) -> int:
    from maest.finetune import run

    print_summary(run(resolve_run_config(args)))
    return 0
