"""``maest pretrain DATA``: MAE-ST pre-training."""

from __future__ import annotations

import argparse

from maest.commands.common import RUN_FLAGS, add_run_args, resolve_config
from maest.commands.summary import run_summary
from maest.train.config import PretrainConfig
from maest.train.recipes import pretrain_preset


def configure(p: argparse.ArgumentParser) -> None:
    add_run_args(p, "CSV list (path label), folder of class folders, or folder of videos", pretrain_preset,
                 "vit_b_k400_pretrain", "train.epochs=10")


def main(args: argparse.Namespace) -> int:
    from maest.train.pretrain import run

    cfg = resolve_config(args, PretrainConfig, pretrain_preset, RUN_FLAGS)
    if not cfg.data.source:
        raise ValueError("no training data: pass a CSV, a class-folder root or a video folder as DATA")
    run_summary(args, "pretrain", cfg, run(cfg), ("steps", "loss", "checkpoint", "lr", "precision", "skipped",
                                                      "motion_fallback"))
    return 0
