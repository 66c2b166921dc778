"""``maest demo``: the embedded default. Writes a small offline set of real H.264 videos (moving
digits), pre-trains a small MAE-ST on CPU for a few minutes, prints the loss falling and writes
reconstruction figures (original / masked / reconstructed frames)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from maest.commands.summary import add_json_arg, finish, q


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="maest_demo", help="folder for videos, run and figures (default maest_demo)")
    p.add_argument("--epochs", type=int, help="pre-training epochs (default: the demo preset's 12)")
    p.add_argument("--videos", type=int, default=64, help="number of generated videos (default 64)")
    p.add_argument("--mask-ratio", type=float, default=0.9, help="masking ratio (default 0.9, the paper's)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run (8 videos, 1 epoch)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a demo config value, e.g. --set train.batch_size=4")
    add_json_arg(p)


def main(args: argparse.Namespace) -> int:
    logger = logging.getLogger("maest")
    level = logger.level
    if not args.verbose:  # the demo shows its steps, the loss and the figures; -v brings the log back
        logger.setLevel(logging.WARNING)
    try:
        return _demo(args)
    finally:
        logger.setLevel(level)


def _demo(args: argparse.Namespace) -> int:
    from maest import load
    from maest.commands.common import set_keys
    from maest.data import ClipSpec, VideoClipDataset, read_csv_list, write_moving_digits
    from maest.figures.reconstruction import labelled_figure, reconstruct, save_gif, save_png
    from maest.overrides import apply_overrides
    from maest.runs.metrics import read_metrics
    from maest.train.pretrain import run
    from maest.train.recipes import get_preset
    from maest.upgrade import upgrade_overrides

    out = Path(args.out)
    cfg = get_preset("demo")
    videos = 8 if args.quick else args.videos
    if args.quick:
        cfg.train.epochs, cfg.train.batch_size, cfg.data.repeat_aug, cfg.train.log_every = 1, 4, 2, 1
    set_keys(cfg, {"train.output_dir": str(out / "run"), "model.mask.ratio": args.mask_ratio,
                   "train.epochs": args.epochs})
    apply_overrides(cfg, upgrade_overrides(args.overrides))
    _replace_earlier_demo(cfg, out)
    enc = cfg.model.encoder
    frames = enc.num_frames * cfg.data.sampling_rate * 2

    t0 = time.perf_counter()
    data = write_moving_digits(out / "data", num_videos=videos, num_frames=frames, size=enc.img_size,
                               seed=cfg.train.seed)
    print(f"[1/3] wrote {videos} moving-digit H.264 videos to {data['root']} ({time.perf_counter() - t0:.1f}s)")

    cfg.data.source = str(data["train"])
    print(f"[2/3] pre-training an MAE-ST ViT {enc.embed_dim}x{enc.depth} on {enc.num_frames} frames x "
          f"{enc.img_size} px for {cfg.train.epochs} epochs at {cfg.model.mask.ratio:.0%} masking")
    summary = run(cfg)
    records = [r for r in read_metrics(Path(cfg.train.output_dir) / "metrics.jsonl") if "loss" in r]
    if records:
        print(f"      loss {records[0]['loss']:.4f} (step {records[0]['step']}) -> "
              f"{records[-1]['loss']:.4f} (step {records[-1]['step']})")

    model = load(summary["checkpoint"])
    val = VideoClipDataset(read_csv_list(data["val"]), ClipSpec(
        mode="val", num_frames=enc.num_frames, sampling_rate=cfg.data.sampling_rate, crop_size=enc.img_size,
        backend=cfg.data.backend, mean=enc.mean, std=enc.std))
    clip, name = val[0]["video"][0], Path(val.items[0][0]).name
    figures = {}
    for mode in ("honest", "true-stats"):
        panels = reconstruct(model, clip, seed=0, mode=mode, target=cfg.model.target)
        stem = "reconstruction" if mode == "honest" else "reconstruction_true_stats"
        title = f"{name}: {cfg.model.mask.ratio:.0%} masked, {mode} mode"
        figures[mode] = str(save_png(labelled_figure(panels, title, 3, cfg.model.mask.ratio), out / f"{stem}.png"))
        if mode == "honest":
            figures["gif"] = str(save_gif(panels, out / f"{stem}.gif", scale=3, title=title))
    print(f"[3/3] reconstructions of {name}:")
    for k, v in figures.items():
        print(f"      {k}: {v}")
    result = {"steps": summary["steps"], "final_loss": summary["loss"], "checkpoint": summary["checkpoint"],
              "seconds": round(time.perf_counter() - t0, 1), "figures": figures}
    steps = [(f"maest report {q(cfg.train.output_dir)}", "the run's curves and figures on one page"),
             (f"maest reconstruct VIDEO --checkpoint {q(summary['checkpoint'])}", "any other video")]
    finish(args, result, f"demo finished in {result['seconds']}s", {"checkpoint": summary["checkpoint"]}, steps)
    return 0


def _replace_earlier_demo(cfg, out: Path) -> None:
    """A demo folder is the demo's own: a re-run replaces the earlier demo's run, says so, and never
    reports the earlier run's files as its own. A folder that cannot be written is refused first."""
    from maest.runs.checkpoint import list_checkpoints
    from maest.runs.outputs import writable_dir

    writable_dir(out, "--out")
    run_dir = Path(cfg.train.output_dir)
    earlier = list_checkpoints(run_dir)
    if earlier or (run_dir / "metrics.jsonl").exists():
        print(f"[0/3] this run replaces the earlier demo run in {out}: its {len(earlier)} checkpoint(s) and metrics "
              f"in {run_dir}, the videos in {out / 'data'} and the reconstruction figures")
        cfg.train.overwrite = True
