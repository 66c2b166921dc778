"""``maest linprobe TRAIN [--val VAL] --init PRETRAIN_CKPT [--probe linear|attentive]``: train a probe
on a frozen encoder."""

from __future__ import annotations

import argparse

from maest.commands.finetune import add_run_args, print_summary, resolve_run_config


def configure(p: argparse.ArgumentParser) -> None:
    add_run_args(p, "vit_b_k400_linprobe")
    p.add_argument("--probe", choices=("linear", "attentive"),
                   help="linear (BatchNorm + linear, MAE's probe; the presets' default) or attentive")


def main(args: argparse.Namespace) -> int:
    from maest.linprobe import run

    cfg = resolve_run_config(args)
    if args.probe:
        cfg.model.probe = args.probe
    print_summary(run(cfg))
    return 0
