"""``maest predict CHECKPOINT PATH...``: the top classes of every video (files, folders, CSV lists or shards)
with names and scores, to ``predictions.csv`` and ``predictions.json``; unreadable videos are listed."""

from __future__ import annotations

import argparse
from pathlib import Path

from maest.commands.summary import add_json_arg, failed_note, finish, plural, q

# what a prediction writes into --output-dir: an earlier run's files are replaced only with --force
RESULT_FILES = ("predictions.csv", "predictions.json")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a classifier checkpoint (maest finetune / linprobe, or a converted one)")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="video files, folders of videos, CSV lists (labels optional) or shards")
    p.add_argument("--top-k", type=int, default=5, help="classes per video (default 5, at most the model's)")
    p.add_argument("--clips", type=int, default=1,
                   help="uniform clips per video, their scores averaged (default 1; the paper tests 10)")
    p.add_argument("--crops", type=int, default=1, choices=(1, 3), help="spatial crops per clip (default 1; 3: "
                                                                        "left / centre / right)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--output-dir", help="where predictions.csv and predictions.json go (default: predict/ next to "
                                          "the checkpoint)")
    out.add_argument("--out", help="one file instead: .csv or .json")
    p.add_argument("--force", action="store_true", help="replace the predictions of an earlier call")
    p.add_argument("--batch-size", type=int, default=4, help="videos per forward pass")
    p.add_argument("--num-workers", type=int, default=2, help="decoding processes")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    add_json_arg(p)


def _targets(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    """(CSV path, JSON path) to write, checked before any work."""
    from maest.runs.outputs import refuse_existing, writable_dir, writable_file

    if args.out:
        out = Path(args.out)
        if out.suffix.lower() not in (".csv", ".json"):
            raise ValueError(f"--out {out}: name a .csv or a .json file (or use --output-dir for both)")
        writable_file(out, "--out", force=args.force)
        return (out, None) if out.suffix.lower() == ".csv" else (None, out)
    folder = Path(args.output_dir) if args.output_dir else Path(args.checkpoint).parent / "predict"
    writable_dir(folder, "--output-dir")
    refuse_existing(folder, RESULT_FILES, "--output-dir", args.force)
    return folder / RESULT_FILES[0], folder / RESULT_FILES[1]


def main(args: argparse.Namespace) -> int:
    from maest.eval.predict import predict_videos, write_predictions

    if args.top_k < 1 or args.clips < 1 or args.batch_size < 1:
        raise ValueError("--top-k, --clips and --batch-size must be >= 1")
    csv_path, json_path = _targets(args)
    result = predict_videos(args.checkpoint, args.paths, args.top_k, args.clips, args.crops, args.batch_size,
                            args.num_workers, args.device, args.precision, progress=True)
    result["checkpoint"] = str(args.checkpoint)
    written = write_predictions(result, csv_path, json_path)
    if result["failed"] and not result["videos"]:
        raise ValueError(f"none of the {len(result['failed'])} videos could be decoded (e.g. {result['failed'][0]}); "
                         f"they are listed in {written[0]}: check the files and the video backend")
    videos, failed = result["videos"], result["failed"]
    lines = [f"  {Path(v['path']).name}: " + ", ".join(f"{t['name']} {t['score']:.3f}" for t in v["top"][:3])
             for v in videos[:5]]
    more = f"\n  ... and {len(videos) - 5} more" if len(videos) > 5 else ""
    done = (f"predicted {plural(len(videos), 'video')} with {args.checkpoint} ({plural(args.clips, 'clip')} x "
            f"{plural(args.crops, 'crop')} each, frame stride {result['sampling_rate']}); top classes:\n"
            + "\n".join(lines) + more)
    outputs = {p.suffix[1:].upper(): p for p in written}
    steps = [(f"maest test {q(args.checkpoint)} LABELLED_DATA", "accuracy and a confusion matrix, given labels")]
    finish(args, {**result, "written": [str(p) for p in written]}, done, outputs, steps, failed_note(failed))
    return 0
