"""``maest bench``: training-step benchmark (see :mod:`maest.bench.step`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def configure(p: argparse.ArgumentParser) -> None:
    from maest.bench.options import add_step_options

    add_step_options(p)
    add_plot_option(p, "also write a chart of s/step by mask ratio and precision here")


def add_plot_option(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--plot PNG``, and the options given after ``--`` (``maest bench -- --models tiny``, the older
    spelling), which :func:`with_options_after_dashes` parses."""
    p.add_argument("--plot", metavar="PNG", help=help_text)
    p.add_argument("after_dashes", nargs="*", help=argparse.SUPPRESS)


def with_options_after_dashes(args: argparse.Namespace, configure: Callable[[argparse.ArgumentParser], None],
                              prog: str) -> argparse.Namespace:
    """``args`` with the options given after ``--`` parsed into it (they win over those before), and
    matplotlib checked when ``--plot`` asks for a chart, before the benchmark spends minutes."""
    if args.after_dashes:
        p = argparse.ArgumentParser(prog=prog)
        configure(p)
        p.parse_args(args.after_dashes, namespace=args)
        if args.after_dashes:  # words that are no option's values: the benchmark takes no positionals
            p.error(f"unrecognized arguments: {' '.join(args.after_dashes)}")
    if args.plot:
        from maest.figures import plots

        plots.require()
    return args


def main(args: argparse.Namespace) -> int:
    from maest.bench.step import run_args
    from maest.bench.trainer import run_trainer

    args = with_options_after_dashes(args, configure, "maest bench")
    rows = run_trainer(args) if args.trainer else run_args(args)
    if args.plot and rows:
        from maest.bench.plots import bench_figure
        from maest.figures.plots import save

        print(f"wrote {save(bench_figure(rows), args.plot)}")
    return 0
