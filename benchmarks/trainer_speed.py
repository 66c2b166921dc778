"""Trainer throughput, this checkout against an earlier one, side by side (issue 19 §1).

Runs the package's own pre-training trainer on the moving-digits geometry (48 px, 8 frames, 8 px x
2-frame patches = 144 tokens, ViT 96 x 4, decoder 64 x 2, 90% masking, raw pixels, in-memory clips)
in alternating subprocesses: the earlier code (``--old PATH``: a ``git worktree`` of it) at its recipe
(fp32, batch 16, no compile) and this code at the recipe given here, round after round, so both see
the same load. Clips/s are the trainer's own logged windows after the first (which holds warm-up).
``--bare`` adds a third run per round, this code's bare step of the same model and recipe (no loader, one
random batch): no trainer of this model can pass it, so ``bare_over_old`` bounds the speed-up any trainer
could reach over the earlier one.

    git worktree add /tmp/maest_old 956b09a
    python benchmarks/trainer_speed.py --old /tmp/maest_old --rounds 3 [--bare]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

GEOMETRY = {"img_size": 48, "patch_size": 8, "num_frames": 8, "embed_dim": 96, "depth": 4, "num_heads": 3}
DECODER = {"embed_dim": 64, "depth": 2, "num_heads": 4}

CHILD = r'''
import json, logging, statistics, sys, torch
from pathlib import Path
spec = json.loads(sys.argv[1])
torch.set_num_threads(spec["threads"])
logging.disable(logging.INFO)
try:  # this layout
    from maest.overrides import apply_overrides
    from maest.train.recipes import get_preset
    from maest.train.pretrain import run
    from maest.train import loop as trainer
    from maest.runs.metrics import read_metrics
    ratio_key = "model.mask.ratio"
    build = lambda cfg: cfg.data.build(cfg.model.encoder)
except ImportError:  # the layout before issue 20
    from maest.config import apply_overrides
    from maest.presets import get_preset
    from maest.pretrain import run
    from maest import trainer
    from maest.tracking import read_metrics
    from maest.data.jobs import pretrain_dataset
    ratio_key = "train.mask_ratio"
    build = lambda cfg: pretrain_dataset(cfg.data, cfg.model.encoder)
from maest.data.memory import InMemoryClips
trainer.write_run_curves = lambda run_dir: None
cfg = apply_overrides(get_preset("demo"), [f"model.encoder.{k}={v}" for k, v in spec["geometry"].items()]
                      + [f"model.decoder.{k}={v}" for k, v in spec["decoder"].items()] + spec["overrides"]
                      + [f"{ratio_key}=0.9"])
if spec["bare"]:  # this code's bare step of the same model: the ceiling of any trainer of it
    from maest.bench.step import bare_clips_per_s
    t = cfg.train
    model = cfg.model.build()
    print(json.dumps({"clips_per_s": bare_clips_per_s(model, t.batch_size, t.precision, t.compile, t.max_steps)}))
    sys.exit(0)
data = InMemoryClips(build(cfg))
run(cfg, dataset=data)
rates = [r["clips_per_s"] for r in read_metrics(Path(cfg.train.output_dir) / "metrics.jsonl") if "clips_per_s" in r]
print(json.dumps({"clips_per_s": statistics.median(rates[1:] or rates), "windows": len(rates)}))
'''


def child(src: Path, data: Path, out: Path, recipe: dict, steps: int, threads: int, bare: bool = False) -> float:
    overrides = [f"data.source={data}", f"train.output_dir={out}", "train.epochs=1000", f"train.max_steps={steps}",
                 f"train.log_every={max(1, steps // 6)}", "train.progress=false", "train.tensorboard=false",
                 "data.num_workers=0", "data.repeat_aug=1", "model.target.kind=pixels", "train.keep_checkpoints=1",
                 f"train.batch_size={recipe['batch']}", f"train.precision={recipe['precision']}",
                 f"train.compile={str(recipe['compile']).lower()}", *recipe.get("extra", [])]
    spec = {"geometry": GEOMETRY, "decoder": DECODER, "overrides": overrides, "threads": threads, "bare": bare}
    env = {**os.environ, "PYTHONPATH": str(src)}
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True, env=env,
                         check=False)
    if res.returncode:
        what = "bare step" if bare else "trainer run"
        raise RuntimeError(f"{what} under {src} failed: {res.stderr.strip().splitlines()[-1:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])["clips_per_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", required=True, help="a checkout of the earlier code (its src/ is put first on sys.path)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=60, help="trainer steps per run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", default="bf16", help="this code's recipe (default: bf16)")
    p.add_argument("--batch", type=int, default=64, help="this code's batch of videos (default: 64)")
    p.add_argument("--compile", choices=["on", "off"], default="on")
    p.add_argument("--transfer", choices=["float32", "uint8"], default="uint8",
                   help="this code's data.transfer (default: uint8, as the miniature pre-trains; the same numbers)")
    p.add_argument("--bare", action="store_true",
                   help="also time this code's bare step of the same model and recipe (forward, loss, backward, "
                        "AdamW on one random batch) in the same rounds: the ceiling of any trainer of it")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args()
    if min(args.rounds, args.steps, args.threads, args.batch) < 1:
        p.error(f"--rounds {args.rounds}, --steps {args.steps}, --threads {args.threads} and --batch {args.batch} "
                "must be >= 1")
    if not (Path(args.old) / "src" / "maest").is_dir():
        p.error(f"--old {args.old} is not a maest checkout (no src/maest): make one with git worktree add PATH REV")
    here = Path(__file__).resolve().parents[1] / "src"
    recipes = {"old": (Path(args.old) / "src", {"batch": 16, "precision": "fp32", "compile": False}),
               "new": (here, {"batch": args.batch, "precision": args.precision, "compile": args.compile == "on",
                              "extra": [f"data.transfer={args.transfer}"]})}
    sys.path.insert(0, str(here))
    from maest.data import write_moving_digits

    if args.bare:
        recipes["bare"] = recipes["new"]
    rates: dict[str, list[float]] = {k: [] for k in recipes}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_moving_digits(Path(tmp) / "data", num_videos=640, num_frames=16, size=48, digit_scale=3)["train"]
        for r in range(args.rounds):
            for name, (src, recipe) in recipes.items():
                rate = child(src, data, Path(tmp) / f"{name}{r}", recipe, args.steps, args.threads, name == "bare")
                rates[name].append(rate)
                print(f"round {r + 1}: {name} {recipe} {rate:.1f} clips/s", flush=True)
    old, new = statistics.median(rates["old"]), statistics.median(rates["new"])
    out = {"old": rates["old"], "new": rates["new"], "old_median": old, "new_median": new, "speedup": new / old,
           "recipes": {k: v[1] for k, v in recipes.items()}}
    if args.bare:  # what the 4x goal would need: the step itself that many times the earlier trainer
        bare = statistics.median(rates["bare"])
        out.update(bare=rates["bare"], bare_median=bare, bare_over_old=bare / old, trainer_over_bare=new / bare)
    print(json.dumps(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:  # a trainer run that failed: its last line, not a traceback
        sys.exit(f"trainer_speed.py: {e}")
