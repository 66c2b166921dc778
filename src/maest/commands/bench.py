"""``maest bench``: training-step benchmark (see :mod:`maest.bench.step`)."""

from __future__ import annotations

import argparse


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plot", metavar="PNG", help="also write a chart of s/step by mask ratio and precision here")
    p.add_argument("args", nargs=argparse.REMAINDER, help="options of the benchmark; see maest bench -- --help")


def main(args: argparse.Namespace) -> int:
    from maest.bench.step import run
    from maest.commands.bench_data import plot_option

    plot, rest = plot_option(args)
    rows = run(rest)
    if plot and rows:
        from maest.figures import plots

        print(f"wrote {plots.save(plots.bench_figure(rows), plot)}")
    return 0
