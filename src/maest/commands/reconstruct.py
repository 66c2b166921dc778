"""``maest reconstruct VIDEO --checkpoint C``: PNG grid, GIF and MP4 of a clip, its masked input and
the MAE's reconstruction, and the tokens a masked decoder reconstructed (see :mod:`maest.figures.reconstruction` for
the honest / true-stats modes; HOG models have no pixels to show, and the figure says so; motion-masked
models are masked by their motion rule from the run's ``data.motion`` source, drawn in a row of their own)."""

from __future__ import annotations

import argparse
from pathlib import Path

from maest.commands.summary import add_json_arg, finish


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="a video file")
    p.add_argument("--checkpoint", required=True, help="a maest pre-training checkpoint (holds its config)")
    p.add_argument("--mask-ratio", type=float, help="fraction of patches removed (default: the run's)")
    p.add_argument("--mode", choices=["honest", "true-stats"], default="honest",
                   help="how masked patches get their mean/variance back (default honest: from visible patches)")
    p.add_argument("--clip", type=int, default=0, help="which of --clips uniform clips to show (default 0)")
    p.add_argument("--clips", type=int, default=1, help="uniform clips over the video (1: the centre clip)")
    p.add_argument("--seed", type=int, default=0, help="masking seed")
    p.add_argument("--out", default="reconstruction", help="output path prefix (.png, .gif, .mp4 are added)")
    p.add_argument("--scale", type=int, default=2, help="pixel upscaling of the figures")
    p.add_argument("--no-mp4", action="store_true", help="skip the MP4")
    p.add_argument("--force", action="store_true", help="replace figures an earlier call wrote at --out")
    add_json_arg(p)


def main(args: argparse.Namespace) -> int:
    from maest.figures.reconstruction import labelled_figure, reconstruction_panels, save_gif, save_mp4, save_png
    from maest.runs.outputs import writable_file

    # before any work: the figures can be written, and earlier ones are replaced only when asked
    for suffix in (".png", ".gif") + (() if args.no_mp4 else (".mp4",)):
        writable_file(Path(args.out).with_suffix(suffix), "--out", force=args.force)
    rec = reconstruction_panels(args.checkpoint, args.video, mask_ratio=args.mask_ratio, mode=args.mode,
                                clip=args.clip, clips=args.clips, seed=args.seed)
    out = Path(args.out)
    title = f"{Path(args.video).name}, {Path(args.checkpoint).name}: {rec.mask_ratio:.0%} masked, {rec.mode} mode"
    figure = labelled_figure(rec.panels, title, args.scale, rec.mask_ratio)
    files = {"png": str(save_png(figure, out.with_suffix(".png"))),
             "gif": str(save_gif(rec.panels, out.with_suffix(".gif"), scale=args.scale, title=title))}
    if not args.no_mp4:
        files["mp4"] = str(save_mp4(rec.panels, out.with_suffix(".mp4"), scale=args.scale, title=title))
    info = {"video": args.video, "mask_ratio": rec.mask_ratio, "mode": rec.mode, "target": rec.target}
    if rec.decoder_mask:  # the figure's "decoder" row shows the tokens it reconstructed
        info["decoder_mask"] = rec.decoder_mask
    if rec.caption:
        info["note"] = rec.caption
    if rec.motion:  # a motion-masked model: its masks are the motion rule's, its "motion" row the field's speed
        info["motion"] = rec.motion
    done = (f"reconstructed {args.video} with {args.checkpoint}: {rec.mask_ratio:.0%} of patches removed, "
            f"{rec.mode} mode, {rec.target} target")
    notes = [f"decoder mask {rec.decoder_mask}: its row shows the tokens the decoder rebuilt"] * bool(rec.decoder_mask)
    notes += [f"motion-guided masks ({rec.motion}); the motion row shows the clip's motion speed"] * bool(rec.motion)
    finish(args, {**info, **files}, done, files, notes=notes + [rec.caption] * bool(rec.caption))
    return 0
