"""Masked distillation (MVD's teacher-feature targets) against pixel targets on moving digits, through the
package's own trainer: does a student that predicts a maest MAE teacher's features fine-tune better than a
student that predicts pixels, at the same student pre-training budget?

Data: moving digits (label = digit x direction, 10 classes; 48 px, 16-frame videos, 8-frame clips), a test
split held out and touched only by the final tests, fine-tuning on the first ``labelled`` training videos.

Stages, each through ``maest.train.pretrain.run`` / ``maest.train.finetune.run`` / ``maest.eval.test.run_test``
on clips decoded once into memory, each cached in ``OUT/runs/<name>-<settings hash>`` (a finished run is reused):

1. the teacher: the digits MAE (``mae_vit_digits_patch8``) pre-trained on pixels (``teacher_epochs``), per seed;
2. two students from scratch with the same recipe and budget (``student_epochs``), per seed: "distill" predicts
   the teacher's last-block features (``model.target.kind=features``: no feature norm, smooth L1, MVD's
   defaults), "pixels" predicts pixels;
3. each student (and the teacher, for reference) fine-tuned with one fixed recipe and tested (top-1).

Writes ``OUT/results.json`` (per seed and mean / std). Nothing is tuned on the test split.

    python benchmarks/distill_digits.py --out runs/distill --budget full    # hours on 2 CPU cores
    python benchmarks/distill_digits.py --out /tmp/distill --budget smoke   # about a minute (CI)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from maest.data import write_moving_digits
from maest.data.memory import InMemoryClips
from maest.eval.test import run_test
from maest.overrides import apply_overrides
from maest.train import finetune as ft
from maest.train import pretrain as pt
from maest.train.recipes import get_finetune_preset, get_preset

BUDGETS: dict[str, dict[str, Any]] = {
    "smoke": dict(videos=40, test=10, labelled=20, teacher_epochs=1, student_epochs=1, finetune_epochs=1,
                  seeds=[0, 1], batch=8, precision="fp32", clips=1, crops=1),
    "full": dict(videos=2400, test=300, labelled=200, teacher_epochs=400, student_epochs=200, finetune_epochs=30,
                 seeds=[0, 1], batch=16, precision="bf16", clips=2, crops=3),
}
# the pre-training recipe of every stage (the miniature's, fixed in advance): 90% random masking, AdamW at
# blr 4.8e-3, clipping at 1; only the target differs between the students
PRETRAIN = ["model.mask.ratio=0.9", "model.mask.strategy=random", "optim.blr=4.8e-3", "optim.clip_grad=1.0",
            "optim.weight_decay=0.05", "data.repeat_aug=1", "data.num_workers=0", "train.progress=false",
            "train.tensorboard=false", "train.log_every=50", "train.keep_checkpoints=1"]
FINETUNE = ["optim.blr=1e-2", "optim.head_lr_scale=10.0", "optim.layer_decay=0.75", "optim.warmup_epochs=2",
            "data.num_workers=0", "train.progress=false", "train.tensorboard=false", "train.keep_checkpoints=1"]


def _hash(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def write_data(root: Path, b: dict[str, Any]) -> dict[str, Path]:
    """``train.csv`` (pre-training), ``test.csv`` (held out) and ``labelled.csv`` (fine-tuning)."""
    made = {"train": root / "train.csv", "test": root / "val.csv"}
    if not made["train"].is_file():
        made.update(write_moving_digits(root, num_videos=b["videos"], num_frames=16, size=48, digit_scale=3,
                                        val_fraction=b["test"] / b["videos"], background="plain", seed=1234))
        made["test"] = made["val"]
    labelled = root / f"labelled-{b['labelled']}.csv"
    if not labelled.is_file():
        labelled.write_text("".join(made["train"].read_text().splitlines(keepends=True)[:b["labelled"]]))
    return {"train": made["train"], "test": made["test"], "labelled": labelled}


class Experiment:
    def __init__(self, out: Path, budget: str) -> None:
        self.out, self.b = out, BUDGETS[budget]
        self.paths = write_data(out / "data", self.b)
        self.memory: dict[tuple, InMemoryClips] = {}

    def _clips(self, cfg: Any, mode: str) -> InMemoryClips:
        key = (str(cfg.data.source), mode, cfg.data.repeat_aug)
        if key not in self.memory:
            data = cfg.data.build(cfg.model.encoder) if mode == "pretrain" else cfg.data.build(cfg.model.encoder, mode)
            self.memory[key] = InMemoryClips(data)
        return self.memory[key]

    def pretrain(self, name: str, seed: int, epochs: int, target: list[str]) -> str:
        """The checkpoint of a digits MAE pre-trained ``epochs`` epochs with the ``target`` settings; cached."""
        settings = [*PRETRAIN, *target, f"train.epochs={epochs}", f"train.batch_size={self.b['batch']}",
                    f"optim.warmup_epochs={max(1, epochs // 20)}", f"train.precision={self.b['precision']}"]
        run_dir = self.out / "runs" / f"{name}-s{seed}-{_hash([settings, self.b['videos']])}"
        done = run_dir / "done.json"
        if done.is_file():
            return json.loads(done.read_text())["checkpoint"]
        cfg = get_preset("demo")
        cfg.model.adopt("digits")
        apply_overrides(cfg, [*settings, f"data.source={self.paths['train']}", f"train.output_dir={run_dir}",
                              f"train.seed={seed}", "train.overwrite=true"])
        t0 = time.perf_counter()
        summary = pt.run(cfg, dataset=self._clips(cfg, "pretrain"))
        done.write_text(json.dumps({"checkpoint": summary["checkpoint"], "loss": summary["loss"],
                                    "seconds": time.perf_counter() - t0}))
        return summary["checkpoint"]

    def finetune(self, init: str, seed: int) -> dict[str, Any]:
        """Fine-tune from ``init`` on the labelled videos and test on the held-out split; cached."""
        epochs = self.b["finetune_epochs"]
        run_dir = self.out / "runs" / f"finetune-s{seed}-{_hash([init, seed, epochs, FINETUNE, self.b['labelled']])}"
        done = run_dir / "done.json"
        if done.is_file():
            return json.loads(done.read_text())
        cfg = get_finetune_preset("demo_finetune")
        cfg.model.adopt("vit_digits_patch8")
        cfg.init = init
        apply_overrides(cfg, [*FINETUNE, f"data.source={self.paths['labelled']}", f"train.output_dir={run_dir}",
                              f"train.epochs={epochs}", f"train.seed={seed}", f"train.precision={self.b['precision']}",
                              "train.overwrite=true"])
        summary = ft.run(cfg, dataset=self._clips(cfg, "finetune"))
        res = run_test(summary["checkpoint"], str(self.paths["test"]), run_dir / "test", clips=self.b["clips"],
                       crops=self.b["crops"], num_workers=0, precision=self.b["precision"], device="cpu")
        row = {"top1": res["top1"], "top5": res["top5"], "final_loss": summary["loss"]}
        done.write_text(json.dumps(row))
        return row

    def seed(self, s: int) -> dict[str, Any]:
        teacher = self.pretrain("teacher", s, self.b["teacher_epochs"], ["model.target.kind=pixels"])
        student = self.b["student_epochs"]
        inits = {"teacher": teacher,
                 "distill": self.pretrain("distill", s, student, [
                     "model.target.kind=features", f"model.target.teacher={teacher}", "model.target.loss=auto",
                     "model.target.feature_norm=none", "model.target.teacher_layer=-1"]),
                 "pixels": self.pretrain("pixels", s, student, ["model.target.kind=pixels"])}
        return {"seed": s, **{arm: self.finetune(init, s) for arm, init in inits.items()}}


def _summary(rows: list[dict[str, Any]], arm: str) -> dict[str, Any]:
    values = [r[arm]["top1"] for r in rows]
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget", choices=sorted(BUDGETS), default="smoke")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    exp = Experiment(args.out, args.budget)
    t0 = time.perf_counter()
    rows = [exp.seed(s) for s in exp.b["seeds"]]
    result = {"budget": args.budget, "settings": exp.b, "pretrain": PRETRAIN, "finetune": FINETUNE, "rows": rows,
              "top1": {arm: _summary(rows, arm) for arm in ("distill", "pixels", "teacher")},
              "seconds": time.perf_counter() - t0}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=1))
    for arm, s in result["top1"].items():
        print(f"{arm:>8}: fine-tune top-1 {s['mean']:.1f} +- {s['std']:.1f} over seeds {exp.b['seeds']}")
    print(f"wrote {args.out / 'results.json'} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
