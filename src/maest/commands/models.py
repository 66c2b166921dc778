"""``maest models``: registered model names and presets."""

from __future__ import annotations

import argparse


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="", help="only names containing this")


def main(args: argparse.Namespace) -> int:
    from maest.models import list_models
    from maest.train.recipes import list_finetune_presets, list_presets

    print("models:  " + " ".join(list_models(args.pattern)))
    print("presets: " + " ".join(list_presets()))
    print("fine-tuning presets: " + " ".join(list_finetune_presets()))
    return 0
