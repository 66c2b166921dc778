"""``maest bench-data``: video loader throughput (see :mod:`maest.bench_data`)."""

from __future__ import annotations

import argparse


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs=argparse.REMAINDER, help="options of the benchmark; see maest bench-data -- --help")


def main(args: argparse.Namespace) -> int:
    from maest.bench_data import run

    run([a for a in args.args if a != "--"])
    return 0
