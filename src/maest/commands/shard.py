"""``maest shard SOURCE OUT_DIR``: pack videos into WebDataset tar shards (see :mod:`maest.data.shard_writer`)."""

from __future__ import annotations

import argparse
import re


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="CSV list (path label), folder of class folders, or folder of videos; "
                                  "with --index: existing shards (pattern, folder, pipe: or URL)")
    p.add_argument("out", help="folder for the shards and manifest.json (with --index: the manifest file)")
    p.add_argument("--prefix", default="train", help="shard names: PREFIX-000000.tar, ... (default train)")
    p.add_argument("--shard-size", default="1GB", help="target shard size, e.g. 1GB, 500MB (default 1GB)")
    p.add_argument("--layout", default="auto", choices=["auto", "csv", "folder", "unlabelled"],
                   help="how to read SOURCE (default: auto)")
    p.add_argument("--index", action="store_true",
                   help="write a manifest (shard list and sample counts) for shards another tool wrote")
    p.add_argument("--overwrite", action="store_true", help="replace shards or a manifest already in OUT")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_size(text: str) -> int:
    """``1GB`` / ``500MB`` / ``64KiB`` / ``1e9`` -> bytes (decimal units; KiB/MiB/GiB binary)."""
    m = re.fullmatch(r"\s*([\d.]+(?:e\d+)?)\s*([KMGT]i?B?|B)?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"--shard-size {text!r} is not a size; write e.g. 1GB or 500MB")
    value, unit = float(m.group(1)), (m.group(2) or "B").upper()
    scale = {"B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}.get(unit)
    if scale is None or value <= 0:
        raise ValueError(f"--shard-size {text!r} is not a positive size; write e.g. 1GB or 500MB")
    return int(value * scale)


def main(args: argparse.Namespace) -> int:
    from maest.data.datasets import read_class_folders, read_csv_list, read_unlabelled_folder
    from maest.data.shard_files import MANIFEST
    from maest.data.shard_writer import index_shards, write_shards

    if args.index:
        m = index_shards(args.source, args.out, overwrite=args.overwrite)
        print(f"wrote {args.out}: {len(m['shards'])} shards, {m['num_samples']} samples")
        if any(s["url"].startswith("pipe:") for s in m["shards"]):
            from maest.data.shard_files import PIPE_OPT_IN

            print(f"note: {args.out} lists shell commands (pipe:); maest runs commands read from a manifest only "
                  f"with {PIPE_OPT_IN}, so it is safe to share, and you need the opt-in to train from it")
        return 0
    size = parse_size(args.shard_size)
    from pathlib import Path

    src = Path(args.source)
    if not src.exists():
        raise FileNotFoundError(f"{src} does not exist; pass a CSV list, a class-folder root or a video folder")
    layout = args.layout
    if layout == "auto":
        if src.is_file():
            layout = "csv"
        else:
            subdirs = [d for d in src.iterdir() if d.is_dir() and not d.name.startswith(".")]
            layout = "folder" if subdirs else "unlabelled"
    classes = None
    if layout == "csv":
        items = read_csv_list(src)
    elif layout == "folder":
        items, classes = read_class_folders(src)
    else:
        items = read_unlabelled_folder(src)
    m = write_shards(items, args.out, classes, prefix=args.prefix, shard_bytes=size, overwrite=args.overwrite,
                     progress=not args.no_progress)
    total = sum(s["bytes"] for s in m["shards"])
    print(f"wrote {m['num_samples']} videos in {len(m['shards'])} shard(s) ({total / 1e6:.1f} MB) and "
          f"{Path(args.out) / MANIFEST}")
    if m["skipped"]:
        print(f"skipped {len(m['skipped'])} unreadable video(s):")
        for s in m["skipped"]:
            print(f"  {s['path']} ({s['reason']})")
    return 0
