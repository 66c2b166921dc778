"""``maest linprobe TRAIN [--val VAL] --init PRETRAIN_CKPT [--probe linear|attentive]``: train a probe
on a frozen encoder."""

from __future__ import annotations

import argparse

from maest.commands.common import set_keys
from maest.commands.finetune import SUMMARY, add_job_args, resolve_job_config
from maest.commands.summary import run_summary


def configure(p: argparse.ArgumentParser) -> None:
    add_job_args(p, "vit_b_k400_linprobe")
    p.add_argument("--probe", choices=("linear", "attentive"),
                   help="linear (BatchNorm + linear, MAE's probe; the presets' default) or attentive")


def main(args: argparse.Namespace) -> int:
    from maest.train.finetune import probe

    cfg = set_keys(resolve_job_config(args), {"model.probe": args.probe})
    run_summary(args, "linprobe", cfg, probe(cfg), SUMMARY)
    return 0
