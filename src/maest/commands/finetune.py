"""``maest finetune TRAIN [--val VAL] --init PRETRAIN_CKPT``: fine-tune a video ViT classifier."""

from __future__ import annotations

import argparse

from maest.commands.common import RUN_FLAGS, add_run_args, resolve_config
from maest.commands.summary import run_summary
from maest.train.config import FinetuneConfig
from maest.train.recipes import finetune_preset

FLAGS = {**RUN_FLAGS, "val": "data.val_source", "init": "init"}
SUMMARY = ("steps", "loss", "checkpoint", "lr", "precision", "val", "skipped")


def add_job_args(p: argparse.ArgumentParser, default_preset: str) -> None:
    """Arguments shared by ``finetune`` and ``linprobe``."""
    add_run_args(p, "training CSV list (path label) or folder of class folders", finetune_preset, default_preset,
                 "model.num_classes=174")
    p.add_argument("--val", help="validation list or class-folder root, evaluated after every epoch")
    p.add_argument("--init", help="pre-training checkpoint to start from (omit to train from scratch)")


def resolve_job_config(args: argparse.Namespace) -> FinetuneConfig:
    cfg: FinetuneConfig = resolve_config(args, FinetuneConfig, finetune_preset, FLAGS)
    if not cfg.data.source:
        raise ValueError("no training data: pass a CSV list or a class-folder root as DATA")
    encoder_keys = [o.partition("=")[0].strip() for o in args.overrides if o.startswith("model.encoder.")]
    if cfg.init and encoder_keys:
        from maest.train.finetune import init_overrides

        init_overrides(cfg, encoder_keys)  # a --set that --init's encoder replaces is said, not silent
    return cfg


def configure(p: argparse.ArgumentParser) -> None:
    add_job_args(p, "vit_l_k400_finetune")


def main(args: argparse.Namespace) -> int:
    from maest.train.finetune import run

    cfg = resolve_job_config(args)
    run_summary(args, "finetune", cfg, run(cfg), SUMMARY)
    return 0
