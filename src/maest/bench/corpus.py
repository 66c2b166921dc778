"""The generated videos of ``maest bench-data``: H.264 test patterns at a given size and keyframe
interval, and WebDataset shards of them, kept under a work folder and reused when already there."""

from __future__ import annotations

from pathlib import Path

from maest.bench.options import SIZES
from maest.data import write_test_pattern


def make_corpus(work: Path, size: str, gop: int, files: int) -> list[Path]:
    w, h = SIZES[size]
    paths = []
    for i in range(files):
        p = work / f"pattern_{size}_gop{gop}_{i}.mp4"
        if not p.exists():
            write_test_pattern(p, w, h, num_frames=300, fps=30, gop=gop, seed=i)
        paths.append(p)
    return paths


def make_shards(work: Path, size: str, gop: int, paths: list[Path], items: int) -> Path:
    from maest.data.shard_writer import write_shards

    out = work / f"shards_{size}_gop{gop}_{items}"
    if not (out / "manifest.json").exists():
        write_shards([(str(paths[i % len(paths)]), 0) for i in range(items)], out, shard_bytes=64_000_000,
                     overwrite=True, progress=False)
    return out


def corpus_and_shards(args, work: Path, size: str) -> tuple[list[Path], int, Path]:
    """The generated files at ``size``, how many items to read (fewer at 720p), and their shards."""
    paths = make_corpus(work, size, args.gop, args.files)
    items = args.items if size == "340x256" else max(3, args.items // 3)
    return paths, items, make_shards(work, size, args.gop, paths, items)
