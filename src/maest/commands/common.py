"""Argument helpers shared by the job commands: preset, JSON config and ``--set`` overrides."""

from __future__ import annotations

import argparse

from maest.config import PretrainConfig, apply_overrides, load_json
from maest.presets import get_preset, list_presets


def add_config_args(parser: argparse.ArgumentParser, default_preset: str) -> None:
    parser.add_argument("--preset", default=default_preset,
                        help=f"named recipe (default {default_preset}); one of: {', '.join(list_presets())}")
    parser.add_argument("--config", help="a config.json (e.g. from a previous run) instead of a preset")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=10 (repeatable)")


def resolve_config(args: argparse.Namespace) -> PretrainConfig:
    cfg = load_json(PretrainConfig, args.config) if args.config else get_preset(args.preset)
    return apply_overrides(cfg, args.overrides)
