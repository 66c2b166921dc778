"""``maest finetune TRAIN [--val VAL] --init PRETRAIN_CKPT``: fine-tune a video ViT classifier."""

from __future__ import annotations

import argparse
import json

from maest.config import apply_overrides, load_json
from maest.finetune_config import FinetuneConfig, get_finetune_preset, list_finetune_presets


def add_run_args(p: argparse.ArgumentParser, default_preset: str) -> None:
    """Arguments shared by ``finetune`` and ``linprobe``."""
    p.add_argument("data", nargs="?", help="training CSV list (path label) or folder of class folders")
    p.add_argument("--val", help="validation list or class-folder root, evaluated after every epoch")
    p.add_argument("--init", help="pre-training checkpoint to start from (omit to train from scratch)")
    p.add_argument("--output-dir", help="run folder (checkpoints, metrics.jsonl, tensorboard)")
    p.add_argument("--resume", nargs="?", const="auto",
                   help="resume from a checkpoint (no value: newest in the run folder)")
    p.add_argument("--preset", default=default_preset,
                   help=f"named recipe (default {default_preset}); one of: {', '.join(list_finetune_presets())}")
    p.add_argument("--config", help="a config.json (e.g. from a previous run) instead of a preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.num_classes=174 (repeatable)")


def resolve_run_config(args: argparse.Namespace) -> FinetuneConfig:
    cfg = load_json(FinetuneConfig, args.config) if args.config else get_finetune_preset(args.preset)
    cfg = apply_overrides(cfg, args.overrides)
    for value, section, key in ((args.data, cfg.data, "source"), (args.val, cfg.data, "val_source"),
                                (args.init, cfg, "init"), (args.output_dir, cfg.train, "output_dir"),
                                (args.resume, cfg.train, "resume")):
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
