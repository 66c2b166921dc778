"""``maest bench``: training-step benchmark (see :mod:`maest.bench`)."""

from __future__ import annotations

import argparse


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs=argparse.REMAINDER, help="options of the benchmark; see maest bench -- --help")


def main(args: argparse.Namespace) -> int:
    from maest.bench import run

    run([a for a in args.args if a != "--"])
    return 0
