"""Loader throughput on real H.264 files: clips/s of the pre-training dataset (decode + sample +
crop + normalise) at 340x256 and 720p, with and without repeated sampling, per decoder backend.

Runs in the calling process (``num_workers=0`` measures one core; workers scale it out)."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from maest.data import ClipSpec, VideoClipDataset, torchcodec_available, write_test_pattern

SIZES = {"340x256": (340, 256), "1280x720": (1280, 720)}


def measure(path: Path, backend: str, repeat: int, items: int, spec_kw: dict) -> dict:
    spec = ClipSpec(mode="pretrain", repeat=repeat, backend=backend, **spec_kw)
    ds = VideoClipDataset([(str(path), 0)] * items, spec)
    ds[0]  # warm-up: library loading, first open
    times = []
    for i in range(items):
        t0 = time.perf_counter()
        ds[i]
        times.append(time.perf_counter() - t0)
    per_item = statistics.median(times)
    return {"clips_per_s": repeat / per_item, "ms_per_video": per_item * 1e3}


def run(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="maest bench-data", description=__doc__)
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--gops", nargs="+", type=int, default=[30, 250])
    p.add_argument("--repeats", nargs="+", type=int, default=[1, 4])
    p.add_argument("--backends", nargs="+", default=["torchcodec", "pyav"])
    p.add_argument("--items", type=int, default=8, help="videos timed per setting (median)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--rate", type=int, default=4)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--workdir", help="where test videos are written (default: a temp folder)")
    p.add_argument("--json", help="write results here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    backends = [b for b in args.backends if b != "torchcodec" or torchcodec_available()]
    spec_kw = dict(num_frames=args.frames, sampling_rate=args.rate, crop_size=args.crop)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        for size in args.sizes:
            w, h = SIZES[size]
            for gop in args.gops:
                path = work / f"pattern_{size}_gop{gop}.mp4"
                if not path.exists():
                    write_test_pattern(path, w, h, num_frames=300, fps=30, gop=gop)
                for backend in backends:
                    for repeat in args.repeats:
                        r = measure(path, backend, repeat, args.items, spec_kw)
                        rows.append({"size": size, "gop": gop, "backend": backend, "repeat": repeat, **r})
                        print(f"{size:>9} gop{gop:<4} {backend:<10} repeat {repeat}: {r['clips_per_s']:6.1f} clips/s "
                              f"({r['ms_per_video']:.0f} ms per video)", flush=True)
    meta = {"torch": torch.__version__, "cpu": platform.processor() or platform.machine(), "threads": 1,
            "clip": f"{args.frames}x{args.rate}, crop {args.crop}"}
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    run()
