"""``maest`` command line: each sub-command lives in its own module exposing ``configure(parser)``
and ``main(args) -> int``; this file only dispatches."""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import re
import sys

from maest import __version__

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("maest.commands.demo", "make a small offline video set, pre-train a small model, show reconstructions"),
    "pretrain": ("maest.commands.pretrain", "MAE-ST pre-training on a video folder or CSV list"),
    "reconstruct": ("maest.commands.reconstruct", "figures of a video, its masked input and the MAE reconstruction"),
    "convert": ("maest.commands.convert", "import official MAE-ST, VideoMAE and Hugging Face VideoMAE checkpoints"),
    "extract": ("maest.commands.extract", "encoder features of videos to .npy + index.csv or Parquet"),
    "bench": ("maest.commands.bench", "training-step speed, FLOP/s and memory; side by side with the reference math"),
    "bench-data": ("maest.commands.bench_data", "video loader throughput on generated H.264 files"),
    "shard": ("maest.commands.shard", "pack videos into WebDataset tar shards (+ manifest) for streaming"),
    "models": ("maest.commands.models", "list registered models and presets"),
    "finetune": ("maest.commands.finetune", "fine-tune a video ViT classifier from MAE-ST weights"),
    "linprobe": ("maest.commands.linprobe", "train a linear or attentive probe on a frozen encoder"),
    "test": ("maest.commands.test", "multi-view test: top-1/top-5, per-class accuracy, confusion matrix"),
    "predict": ("maest.commands.predict", "the top classes of videos (files, folders, lists, shards) to CSV and JSON"),
    "report": ("maest.commands.report", "one self-contained HTML page of a run: config, curves, metrics, figures"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maest", description="Masked autoencoders as spatiotemporal learners")
    parser.add_argument("--version", action="version", version=f"maest {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not args.command:
        parser.print_help()
        return 2
    from maest.runs.preempt import Stopped

    try:
        return int(importlib.import_module(args._module).main(args) or 0)
    except Stopped as e:  # SIGTERM / SIGINT during training: saved; exit as the signal would (130, 143)
        print(f"maest {args.command}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:  # Ctrl-C outside a training loop: nothing to save
        print(f"maest {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, FloatingPointError, OSError) as e:
        # user errors: one clear line, no traceback (use -v for one); OSError (a file that cannot be
        # read or written) names its path; FloatingPointError is a non-finite loss
        if args.verbose:
            raise
        print(f"maest {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2


def one_line(e: BaseException) -> str:
    """The message of ``e``; for an error raised in a DataLoader worker (which torch re-raises with the
    worker's traceback appended) the original message alone; for a full disk, where (when known)."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):  # "[Errno 28]" names no file
        from maest.runs.outputs import device_of

        what = "no space left" if e.errno == errno.ENOSPC else "disk quota exceeded"
        where = f"{device_of(e.filename)} writing {e.filename}" if isinstance(e.filename, str) else "the device"
        return f"{what} on {where}; free space and run the command again"
    text = str(e)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        m = re.fullmatch(r"[A-Za-z_][\w.]*: (.*)", last.strip())
        text = m.group(1) if m else last.strip()
    return text


if __name__ == "__main__":
    sys.exit(main())
