"""``maest extract DATA --checkpoint C``: encoder features for a folder, list or single video."""

from __future__ import annotations

import argparse

from maest.commands.summary import add_json_arg, failed_note, finish


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="a CSV list, a folder of class folders, a folder of videos, or one video")
    p.add_argument("--checkpoint", required=True, help="a maest pre-training or fine-tuning checkpoint")
    p.add_argument("--pool", choices=["mean", "cls", "token0"],
                   help="mean of patch tokens, class token or first patch token (default: the model's pooling)")
    p.add_argument("--clips", type=int, default=4, help="uniform clips per video (default 4)")
    p.add_argument("--average", action="store_true", help="one feature per video (mean over its clips)")
    p.add_argument("--format", choices=["npy", "parquet"], default="npy")
    p.add_argument("--out", default="features", help="output folder (default ./features)")
    p.add_argument("--force", action="store_true", help="replace the features of an earlier run in --out")
    p.add_argument("--batch-size", type=int, default=2, help="videos per forward pass")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    add_json_arg(p)


def main(args: argparse.Namespace) -> int:
    from maest.eval.features import dataset_for, extract, load_encoder, write_features
    from maest.runs.outputs import refuse_existing, writable_dir
    from maest.runtime import resolve_device, resolve_precision

    # before any work: the folder is usable and holds no earlier features (unless --force)
    writable_dir(args.out, "--out")
    outputs = ("features.npy", "index.csv") if args.format == "npy" else ("features.parquet",)
    refuse_existing(args.out, (*outputs, "failed.txt"), "--out", args.force)
    model, sampling = load_encoder(args.checkpoint)
    dataset = dataset_for(model, args.data, args.clips, sampling)
    device = resolve_device(args.device)
    feats, rows, failed = extract(model, dataset, args.pool, args.average, args.batch_size, args.num_workers,
                                  device, resolve_precision(args.precision, device))
    files = write_features(feats, rows, failed, args.out, args.format)
    result = {"videos": len(dataset), "shape": list(feats.shape), "failed_videos": len(failed), **files}
    per = "one per video" if args.average else f"one per clip, {args.clips} clips per video"
    pool = args.pool or "the model's"
    done = (f"extracted {feats.shape[0]} features of width {feats.shape[1]} from {len(dataset) - len(failed)} of "
            f"{len(dataset)} videos ({per}; {pool} pooling)")
    finish(args, result, done, {k: v for k, v in files.items() if k != "failed" or failed}, notes=failed_note(failed))
    return 0
