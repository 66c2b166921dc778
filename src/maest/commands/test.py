"""``maest test CHECKPOINT DATA``: multi-view test of a fine-tuned (or probed) checkpoint: top-1/top-5,
per-class accuracy, confusion matrix (CSV and PNG) and the list of videos that failed to decode."""

from __future__ import annotations

import argparse

from maest.commands.summary import add_json_arg


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
    add_json_arg(p)

# what a test writes into --output-dir: an earlier test's files are replaced only with --force
RESULT_FILES = ("results.json", "confusion.csv", "confusion.png")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from maest.commands.summary import failed_note, finish, plural, q
    from maest.eval.test import run_test
    from maest.runs.outputs import refuse_existing, writable_dir

    out = Path(args.output_dir) if args.output_dir else Path(args.checkpoint).parent / "test"
    # before any work: the folder is usable and holds no earlier results (unless --force)
    writable_dir(out, "--output-dir")
    refuse_existing(out, RESULT_FILES, "--output-dir", args.force)
    result = run_test(args.checkpoint, args.data, out, clips=args.clips, crops=args.crops,
                      batch_size=args.batch_size, num_workers=args.num_workers, precision=args.precision,
                      device=args.device, classes_file=args.classes)
    k = result.get("topk", 5)
    topk = f", top-{k} {result[f'top{k}']:.2f}%" if k > 1 and f"top{k}" in result else ""
    done = (f"tested {args.checkpoint} on {plural(result['videos'], 'video')} ({plural(args.clips, 'clip')} x "
            f"{plural(args.crops, 'crop')} each): top-1 {result['top1']:.2f}%{topk}")
    outputs = {"results": out / "results.json", "confusion": out / "confusion.csv",
               "figure": out / "confusion.png" if (out / "confusion.png").exists() else None}  # needs matplotlib
    steps = [(f"maest report {q(Path(args.checkpoint).parent)}", "the run's page, with this test"),
             (f"maest predict {q(args.checkpoint)} VIDEO", "the classes of any video")]
    keys = ("top1", f"top{k}", "topk", "videos", "failed_videos", "views_per_video", "failed", "classes")
    finish(args, {key: result[key] for key in keys if key in result}, done, outputs, steps,
           failed_note(result["failed"]))
    return 0
