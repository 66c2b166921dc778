"""``maest bench-data``: video loader throughput (see :mod:`maest.bench.data`)."""

from __future__ import annotations

import argparse

from maest.commands.bench import add_plot_option, with_options_after_dashes


def configure(p: argparse.ArgumentParser) -> None:
    from maest.bench.options import add_data_options

    add_data_options(p)
    add_plot_option(p, "also write a chart of clips/s by backend and repeat here")


def main(args: argparse.Namespace) -> int:
    from maest.bench.data import run_args

    args = with_options_after_dashes(args, configure, "maest bench-data")
    rows = [r for r in run_args(args) if "clips_per_s" in r]  # loader rows; e2e/profile/stall are not charted
    if args.plot and rows:
        from maest.bench.plots import bench_data_figure
        from maest.figures.plots import save

        print(f"wrote {save(bench_data_figure(rows), args.plot)}")
    return 0
