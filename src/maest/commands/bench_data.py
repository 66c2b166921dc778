"""``maest bench-data``: video loader throughput (see :mod:`maest.bench.data`)."""

from __future__ import annotations

import argparse


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plot", metavar="PNG", help="also write a chart of clips/s by backend and repeat here")
    p.add_argument("args", nargs=argparse.REMAINDER, help="options of the benchmark; see maest bench-data -- --help")


def plot_option(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """``--plot PNG`` given before or after ``--``, and the benchmark's own arguments. Checks that
    matplotlib is there before the benchmark spends minutes."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--plot")
    known, rest = p.parse_known_args([a for a in args.args if a != "--"])
    plot = args.plot or known.plot
    if plot:
        from maest.figures import plots

        plots._mpl()
    return plot, rest


def main(args: argparse.Namespace) -> int:
    from maest.bench.data import run

    plot, rest = plot_option(args)
    rows = [r for r in run(rest) if "clips_per_s" in r]  # loader rows; e2e/profile/stall are not charted
    if plot and rows:
        from maest.figures import plots

        print(f"wrote {plots.save(plots.bench_data_figure(rows), plot)}")
    return 0
