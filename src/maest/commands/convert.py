"""``maest convert SRC OUT [--from auto|maest|official|videomae|hf] [--to maest|safetensors|hf]``:
import and export checkpoints exactly, or refuse (see :mod:`maest.convert`)."""

from __future__ import annotations

import argparse

from maest.commands.summary import add_json_arg, finish, q


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="a .pth/.pyth/.pt/.safetensors checkpoint, or a Hugging Face model folder")
    p.add_argument("out", help="output file (.pt maest checkpoint or .safetensors) or folder (--to hf)")
    p.add_argument("--from", dest="fmt", default="auto", choices=["auto", "maest", "official", "videomae", "hf"],
                   help="source format (default: detected): a maest checkpoint, official MAE-ST/SlowFast, original "
                        "VideoMAE/VideoMAE V2, or a transformers VideoMAE folder")
    p.add_argument("--to", default="maest", choices=["maest", "safetensors", "hf"],
                   help="maest checkpoint with its model config (default), safetensors (config in the metadata), "
                        "or a Hugging Face VideoMAE folder (VideoMAE-architecture models only)")
    p.add_argument("--model", help="maest model name: required for official checkpoints (they do not record their "
                                   "head count); a label otherwise")
    p.add_argument("--num-frames", type=int, help="clip length the checkpoint was trained on, where the weights do "
                                                  "not record it (VideoMAE: default 16)")
    p.add_argument("--img-size", type=int, help="resolution the checkpoint was trained on, where the weights do not "
                                                "record it (VideoMAE: default 224)")
    p.add_argument("--num-heads", type=int, help="encoder attention heads of a VideoMAE checkpoint that is not an "
                                                 "official release, or of an official MAE-ST one whose width differs "
                                                 "from --model's (the weights do not record them)")
    p.add_argument("--decoder-num-heads", type=int, help="decoder attention heads, likewise")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    add_json_arg(p)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from maest.convert.run import convert
    from maest.runs.outputs import writable_dir, writable_file

    # before reading the source: the output can be written (replacing one needs --force: see convert)
    out = Path(args.out)
    if args.to == "hf":  # the folder itself is made only once the export is known to be exact
        if out.exists() and not out.is_dir():
            raise ValueError(f"OUT {out} is a file; --to hf writes a folder: give a folder path")
        writable_dir(out if out.is_dir() else out.parent, "OUT" if out.is_dir() else "the folder of OUT")
    elif out.is_dir():
        raise ValueError(f"OUT {out} is a folder; give a file path (or --to hf for a Hugging Face folder)")
    else:
        writable_file(out, "OUT")
    report = convert(args.src, args.out, fmt=args.fmt, to=args.to, model_name=args.model, num_frames=args.num_frames,
                     img_size=args.img_size, num_heads=args.num_heads, decoder_num_heads=args.decoder_num_heads,
                     force=args.force)
    kinds = {"mae": "pre-training (MAE) model", "classifier": "classifier", "probe": "probe"}
    done = (f"converted {args.src} ({report['format']}) to {report['to']}: a {kinds[report['kind']]} of "
            f"{report['tensors']} tensors, {report['parameters']:,} parameters")
    out = q(report["output"])
    steps = {"mae": [(f"maest finetune TRAIN_DATA --init {out}", "a classifier from these weights")],
             "classifier": [(f"maest predict {out} VIDEO", "the classes of a video"),
                            (f"maest test {out} TEST_DATA", "accuracy on labelled data")]}.get(report["kind"], [])
    if args.to == "hf":  # a folder for transformers, not for maest's commands
        steps = [(f"pipeline('video-classification', model={str(report['output'])!r})", "in Python, with transformers")
                 ] if report["kind"] == "classifier" else []
    finish(args, report, done, {"output": report["output"]}, steps, report["notes"])
    return 0
