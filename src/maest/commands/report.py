"""``maest report RUN_DIR``: one self-contained HTML page of a run (see :mod:`maest.figures.report`)."""

from __future__ import annotations

import argparse


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run folder (the --output-dir of pretrain / finetune / linprobe); "
                                   "a run in progress works too")
    p.add_argument("--compare", nargs="+", default=[], metavar="RUN_DIR",
                   help="other run folders whose curves and metrics are overlaid on this run's")
    p.add_argument("--out", help="the HTML file to write (default RUN_DIR/report.html)")
    p.add_argument("--video", help="the video of the reconstruction figure (default: the run's first training video)")
    p.add_argument("--force", action="store_true", help="replace an existing report file")


def main(args: argparse.Namespace) -> int:
    from maest.figures.report import write_report

    path = write_report(args.run_dir, args.out, args.compare, args.video, args.force)
    print(f"wrote {path}")
    return 0
