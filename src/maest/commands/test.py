"""``maest test CHECKPOINT DATA``: multi-view test of a fine-tuned (or probed) checkpoint: top-1/top-5,
per-class accuracy, confusion matrix (CSV and PNG) and the list of videos that failed to decode."""

from __future__ import annotations

import argparse


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a checkpoint written by maest finetune or maest linprobe")
    p.add_argument("data", help="test CSV list (path label) or folder of class folders")
    p.add_argument("--clips", type=int, default=10, help="temporal clips per video (default 10)")
    p.add_argument("--crops", type=int, default=3, choices=(1, 3), help="spatial crops per clip (default 3)")
    p.add_argument("--batch-size", type=int, default=4,
                   help="videos per forward pass (each brings clips x crops views)")
    p.add_argument("--num-workers", type=int, default=2, help="decoding processes")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--classes", help="class names, one per line (default: classes.txt next to a CSV list)")
    p.add_argument("--output-dir",
                   help="where results.json and confusion.{csv,png} go (default: test/ next to the checkpoint)")
    p.add_argument("--force", action="store_true", help="replace the results of an earlier test in --output-dir")

# what a test writes into --output-dir: an earlier test's files are replaced only with --force
RESULT_FILES = ("results.json", "confusion.csv", "confusion.png")


def main(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from maest.eval.test import run_test
    from maest.runs.outputs import refuse_existing, writable_dir

    out = Path(args.output_dir) if args.output_dir else Path(args.checkpoint).parent / "test"
    # before any work: the folder is usable and holds no earlier results (unless --force)
    writable_dir(out, "--output-dir")
    refuse_existing(out, RESULT_FILES, "--output-dir", args.force)
    result = run_test(args.checkpoint, args.data, out, clips=args.clips, crops=args.crops,
                      batch_size=args.batch_size, num_workers=args.num_workers, precision=args.precision,
                      device=args.device, classes_file=args.classes)
    print(json.dumps({k: result[k] for k in ("top1", "top5", "videos", "failed_videos", "views_per_video")}))
    if result["failed"]:
        print(f"{len(result['failed'])} videos could not be decoded and are not scored: {result['failed'][:5]}")
    written = [out / name for name in RESULT_FILES if (out / name).exists()]  # no figure without matplotlib
    print(f"wrote {', '.join(map(str, written))}")
    return 0
