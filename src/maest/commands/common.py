"""Argument helpers shared by the job commands: the run's data and folder flags, preset, JSON config
and ``--set`` overrides, each copied into the config in one place; and the end-of-run summary."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from maest.loading import load_run_config
from maest.overrides import apply_overrides
from maest.train.recipes import PresetRegistry
from maest.upgrade import upgrade_overrides

# flag attribute -> the config key it sets (a flag left out keeps the preset's or config file's value)
RUN_FLAGS = {"data": "data.source", "output_dir": "train.output_dir", "resume": "train.resume",
             "overwrite": "train.overwrite"}


def add_run_args(parser: argparse.ArgumentParser, data_help: str, presets: PresetRegistry, default_preset: str,
                 example: str) -> None:
    """DATA, ``--output-dir``, ``--resume``, ``--overwrite`` and the config arguments of a training job."""
    parser.add_argument("data", nargs="?", help=data_help)
    parser.add_argument("--output-dir", help="run folder (checkpoints, metrics.jsonl, tensorboard)")
    parser.add_argument("--resume", nargs="?", const="auto",
                        help="resume from a checkpoint (no value: newest in the run folder)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the checkpoints and metrics of an earlier run in the run folder")
    add_config_args(parser, presets, default_preset, example)


def add_config_args(parser: argparse.ArgumentParser, presets: PresetRegistry, default_preset: str,
                    example: str) -> None:
    """``--preset`` (one of ``presets``), ``--config`` and repeatable ``--set`` (``example`` in the help)."""
    parser.add_argument("--preset", default=default_preset,
                        help=f"named recipe (default {default_preset}); one of: {', '.join(presets.names())}")
    parser.add_argument("--config", help="a config.json (e.g. from a previous run) instead of a preset")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config value, e.g. --set {example} (repeatable)")


def resolve_config(args: argparse.Namespace, cls: type, presets: PresetRegistry,
                   flags: dict[str, str] | None = None) -> Any:
    """The ``cls`` config from ``--config`` or ``--preset``, with ``--set`` overrides applied, then the
    flags of ``flags`` (attribute -> config key) that were given."""
    cfg = load_run_config(cls, args.config) if args.config else presets.get(args.preset)
    apply_overrides(cfg, upgrade_overrides(args.overrides))
    return set_keys(cfg, {key: getattr(args, attr, None) for attr, key in (flags or {}).items()})


def set_keys(cfg: Any, values: dict[str, Any]) -> Any:
    """Set dotted config keys to the values that are not None / False (flags the user gave)."""
    for key, value in values.items():
        if value is None or value is False:
            continue
        *parents, leaf = key.split(".")
        target = cfg
        for name in parents:
            target = getattr(target, name)
        setattr(target, leaf, value)
    return cfg


def print_summary(summary: dict[str, Any], keys: tuple[str, ...]) -> None:
    """The end-of-run JSON line (main process only, under torchrun) and the unreadable-video count."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    print(json.dumps({k: summary[k] for k in keys}))
    if summary["skipped"]:
        print(f"skipped {len(summary['skipped'])} unreadable video reads ({len(set(summary['skipped']))} files)")
