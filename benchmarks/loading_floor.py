"""What loading a batch from memory costs, against the floor of its tensor work (issue 19 §1).

The trainer's in-memory path (``data.cache=memory`` or :class:`maest.data.memory.InMemoryClips`) makes a
batch of the digits pre-training (48 px, 8 of 16 frames, one clip a video, uint8 clips) item by item:
seeding, clip indices, the frame gather, the random resized crop, the flip, the copy into the item's
(C, T, H, W) layout, collation. "kernels only" runs just the tensor work of the same batch (gather,
bilinear uint8 resize of a crop, a flip for every other clip, the layout copy) with fixed boxes and no
per-item Python: no loader that gives the same values with torch's kernels can cost less on these cores. Both
alternate in one process (``--rounds``), on the training process's thread count, so load falls on both
alike.

    python benchmarks/loading_floor.py --rounds 25
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from maest.data import write_moving_digits
from maest.data.loader import SeededItems, collate_clips
from maest.data.memory import InMemoryClips
from maest.train.recipes import get_preset


def dataset(root: Path, videos: int) -> InMemoryClips:
    """The digits pre-training set, in memory, as the trainer bench makes it (uint8 clips, one a video)."""
    cfg = get_preset("demo")
    cfg.model.adopt("digits")
    cfg.data.source = str(write_moving_digits(root, num_videos=videos, num_frames=16, size=48, digit_scale=3)["train"])
    cfg.data.repeat_aug, cfg.data.transfer = 1, "uint8"
    return InMemoryClips(cfg.data.build(cfg.model.encoder))


def kernels_only(ds: InMemoryClips, first: int, batch: int) -> torch.Tensor:
    """The tensor work of one batch, with fixed crop boxes and frames and no per-item bookkeeping."""
    out = torch.empty(batch, 3, 8, 48, 48, dtype=torch.uint8)
    idx = torch.arange(0, 16, 2)
    for k in range(batch):
        frames = ds.videos[(first + k) % len(ds)].frames.permute(0, 2, 3, 1)  # the store's channels-last layout
        x = frames.index_select(0, idx).permute(0, 3, 1, 2)[..., 4:44, 6:42]
        y = torch.nn.functional.interpolate(x, size=(48, 48), mode="bilinear", align_corners=False)
        out[k].copy_((y.flip(-1) if k % 2 else y).permute(1, 0, 2, 3))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=25)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--videos", type=int, default=512, help="generated videos (the training split is held)")
    p.add_argument("--threads", type=int, default=2, help="torch threads, as the training process has")
    p.add_argument("--json", help="write the result here")
    args = p.parse_args()
    if min(args.rounds, args.batch, args.threads) < 1 or args.videos < 2:
        p.error(f"--rounds {args.rounds}, --batch {args.batch} and --threads {args.threads} must be >= 1, "
                f"--videos {args.videos} >= 2")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            ds = dataset(Path(tmp), args.videos)
        except ValueError as e:  # e.g. too few videos left for a training split
            p.error(str(e))
    items = SeededItems(ds, seed=0)
    ways = {"item path": lambda b: collate_clips([items[(b * args.batch + k) % len(ds)] for k in range(args.batch)]),
            "kernels only": lambda b: kernels_only(ds, b * args.batch, args.batch)}
    ms: dict[str, list[float]] = {k: [] for k in ways}
    for r in range(args.rounds + 1):
        for name, make in ways.items():
            t = time.perf_counter()
            make(r)
            if r:  # the first round warms both up
                ms[name].append((time.perf_counter() - t) * 1e3)
    res = {"batch": args.batch, "threads": args.threads, "rounds": args.rounds,
           "ms_per_batch": {k: statistics.median(v) for k, v in ms.items()}, "ms": ms}
    for k, v in res["ms_per_batch"].items():
        per_clip = v * 1e3 / args.batch
        print(f"{k}: {v:.1f} ms a batch of {args.batch} (median of {args.rounds}; {per_clip:.0f} us a clip)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
