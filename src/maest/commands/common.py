"""Argument helpers shared by the job commands: the run's data and folder flags, preset, JSON config
and ``--set`` overrides, each copied into the config in one place (the end-of-run summary is
:mod:`maest.commands.summary`'s)."""

from __future__ import annotations

import argparse
from typing import Any

from maest.commands.summary import add_json_arg
from maest.data.shard_files import PIPE_OPT_IN, PipeRefused, pipe_allowed
from maest.loading import load_run_config
from maest.overrides import apply_overrides
from maest.train.recipes import PresetRegistry
from maest.upgrade import upgrade_overrides

# flag attribute -> the config key it sets (a flag left out keeps the preset's or config file's value)
RUN_FLAGS = {"data": "data.source", "output_dir": "train.output_dir", "resume": "train.resume",
             "overwrite": "train.overwrite"}


def add_run_args(parser: argparse.ArgumentParser, data_help: str, presets: PresetRegistry, default_preset: str,
                 example: str) -> None:
    """DATA, ``--output-dir``, ``--resume``, ``--overwrite``, the config arguments and ``--json`` of a training job."""
    parser.add_argument("data", nargs="?", help=data_help)
    parser.add_argument("--output-dir", help="run folder (checkpoints, metrics.jsonl, tensorboard)")
    parser.add_argument("--resume", nargs="?", const="auto",
                        help="resume from a checkpoint (no value: newest in the run folder)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the checkpoints and metrics of an earlier run in the run folder")
    add_config_args(parser, presets, default_preset, example)
    add_json_arg(parser)


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
    overrides = upgrade_overrides(args.overrides)
    apply_overrides(cfg, overrides)
    given = {key: getattr(args, attr, None) for attr, key in (flags or {}).items()}
    set_keys(cfg, given)
    trust_typed_pipe(cfg, args.config, typed=given.get("data.source") is not None
                     or any(o.split("=", 1)[0].strip() == "data.source" for o in overrides))
    return cfg


def trust_typed_pipe(cfg: Any, config_file: str | None, typed: bool) -> None:
    """``pipe:`` shell commands run from what the user typed, never from file contents: a ``pipe:``
    ``data.source`` given as DATA or ``--set data.source`` is trusted (``data.allow_pipe``); one read from
    a ``--config`` file is refused, naming the file, unless ``--set data.allow_pipe=true`` or
    ``MAEST_ALLOW_PIPE=1`` (a file never opts itself in: :func:`~maest.loading.load_run_config`)."""
    data = getattr(cfg, "data", None)
    if not hasattr(data, "allow_pipe") or not str(data.source).startswith("pipe:"):
        return
    if typed:
        data.allow_pipe = True
    elif config_file and not pipe_allowed(data.allow_pipe):
        raise PipeRefused(f"config file {config_file}: refusing to run its data.source {data.source[:80]!r}, a "
                          f"shell command; maest runs pipe: commands from files only with {PIPE_OPT_IN} if you "
                          "trust the file, or pass the source as DATA")


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
