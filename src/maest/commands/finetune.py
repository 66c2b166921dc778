"""``maest finetune TRAIN [--val VAL] --init PRETRAIN_CKPT``: fine-tune a video ViT classifier."""

from __future__ import annotations

import argparse

from maest.commands.common import RUN_FLAGS, add_run_args, print_summary, resolve_config
from maest.train.config import FinetuneConfig
from maest.train.recipes import finetune_preset

FLAGS = {**RUN_FLAGS, "val": "data.val_source", "init": "init"}
SUMMARY = ("steps", "loss", "checkpoint", "lr", "precision", "val")


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
    return cfg


def configure(p: argparse.ArgumentParser) -> None:
    add_job_args(p, "vit_l_k400_finetune")


def main(args: argparse.Namespace) -> int:
    from maest.train.finetune import run

    print_summary(run(resolve_job_config(args)), SUMMARY)
    return 0
