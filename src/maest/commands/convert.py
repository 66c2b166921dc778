"""``maest convert SRC OUT --from official|videomae|hf``: import checkpoints (see :mod:`maest.convert`)."""

from __future__ import annotations

import argparse
import json


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="a .pth/.pyth/.pt/.safetensors checkpoint, or a Hugging Face model folder")
    p.add_argument("out", help="output file (.pt maest checkpoint or .safetensors) or folder (--to hf)")
    p.add_argument("--from", dest="fmt", required=True, choices=["official", "videomae", "hf"],
                   help="official MAE-ST/SlowFast, original VideoMAE/VideoMAEv2, or transformers VideoMAE")
    p.add_argument("--model", help="maest model name (required for official checkpoints)")
    p.add_argument("--to", default="maest", choices=["maest", "safetensors", "hf"],
                   help="maest checkpoint with config (default), bare safetensors, or an HF VideoMAE folder")
    p.add_argument("--num-frames", type=int, default=16, help="clip length the checkpoint was trained on")
    p.add_argument("--img-size", type=int, default=224, help="resolution the checkpoint was trained on")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from maest.convert.run import convert
    from maest.outputs import writable_dir

    # before reading the source: the output's folder can be written
    out = Path(args.out)
    if args.to == "hf":
        writable_dir(out, "OUT")
    elif out.is_dir():
        raise ValueError(f"OUT {out} is a folder; give a file path (or --to hf for a Hugging Face folder)")
    else:
        writable_dir(out.parent, "the folder of OUT")
    print(json.dumps(convert(args.src, args.fmt, args.out, args.model, args.to, args.num_frames, args.img_size)))
    return 0
