"""Argument helpers shared by the job commands: preset, JSON config and ``--set`` overrides."""

from __future__ import annotations

import argparse
from typing import Any

from maest.config import apply_overrides, load_json
from maest.presets import PresetRegistry


def add_config_args(parser: argparse.ArgumentParser, presets: PresetRegistry, default_preset: str,
                    example: str) -> None:
    """``--preset`` (one of ``presets``), ``--config`` and repeatable ``--set`` (``example`` in the help)."""
    parser.add_argument("--preset", default=default_preset,
                        help=f"named recipe (default {default_preset}); one of: {', '.join(presets.names())}")
    parser.add_argument("--config", help="a config.json (e.g. from a previous run) instead of a preset")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config value, e.g. --set {example} (repeatable)")


def resolve_config(args: argparse.Namespace, cls: type, presets: PresetRegistry) -> Any:
    """The ``cls`` config from ``--config`` or ``--preset``, with ``--set`` overrides applied."""
    cfg = load_json(cls, args.config) if args.config else presets.get(args.preset)
    return apply_overrides(cfg, args.overrides)
