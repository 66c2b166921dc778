"""``maest reconstruct VIDEO --checkpoint C``: PNG grid, GIF and MP4 of a clip, its masked input and
the MAE's reconstruction, and the tokens a masked decoder reconstructed (see :mod:`maest.figures.reconstruction` for
the honest / true-stats modes; HOG models have no pixels to show, and the figure says so)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


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


def main(args: argparse.Namespace) -> int:
    from maest.data import ClipSpec, VideoClipDataset
    from maest.figures.reconstruction import caption, grid_image, reconstruct, save_gif, save_mp4, save_png
    from maest.loading import read
    from maest.runs.outputs import writable_file

    # before any work: the figures can be written, and earlier ones are replaced only when asked
    for suffix in (".png", ".gif") + (() if args.no_mp4 else (".mp4",)):
        writable_file(Path(args.out).with_suffix(suffix), "--out", force=args.force)
    source = read(args.checkpoint)
    if source.kind != "mae":
        raise ValueError(f"{args.checkpoint} holds a {source.kind}, not a pre-training (MAE) model: reconstructions "
                         "need the decoder")
    model, mcfg = source.build(), source.model_config
    run = source.run_config or {}
    e = mcfg.encoder
    spec = ClipSpec(mode="test", num_frames=e.num_frames, sampling_rate=run.get("data", {}).get("sampling_rate", 4),
                    crop_size=e.img_size, test_clips=args.clips, test_crops=1,
                    backend=run.get("data", {}).get("backend", "auto"), mean=e.mean, std=e.std)
    if not 0 <= args.clip < args.clips:
        raise ValueError(f"--clip {args.clip} must be in [0, {args.clips})")
    clip = VideoClipDataset([(args.video, -1)], spec)[0]["video"][args.clip]
    ratio = mcfg.mask.ratio if args.mask_ratio is None else args.mask_ratio
    panels = reconstruct(model, clip, ratio, seed=args.seed, mode=args.mode, target=mcfg.target)
    out = Path(args.out)
    files = {"png": str(save_png(grid_image(panels), out.with_suffix(".png"), scale=args.scale)),
             "gif": str(save_gif(panels, out.with_suffix(".gif"), scale=args.scale))}
    if not args.no_mp4:
        files["mp4"] = str(save_mp4(panels, out.with_suffix(".mp4"), scale=args.scale))
    info = {"video": args.video, "mask_ratio": ratio, "mode": args.mode, "target": mcfg.target.kind}
    if mcfg.mask.decoder != "none":  # the figure's "decoder" row shows the tokens it reconstructed
        info["decoder_mask"] = f"{mcfg.mask.decoder} {mcfg.mask.decoder_ratio}"
    if caption(panels):
        info["note"] = caption(panels)
    print(json.dumps({**info, **files}))
    return 0
