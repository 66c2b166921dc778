"""The end of every command: what was done, where each output went and what to run next, in a few lines
for a person; with ``--json`` the same result as one JSON line instead (for scripts).

::

    fine-tuning finished: 400 steps, last loss 0.4127 (bf16, peak lr 1.2e-03); val top-1 81.25% (epoch 8)
      run folder:  runs/ft
      checkpoint:  runs/ft/checkpoint-00000400.pt
      ...
    next:
      maest test runs/ft/checkpoint-00000400.pt TEST_DATA    (top-1, per-class accuracy, confusion matrix)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

JOBS = {"pretrain": "pre-training", "finetune": "fine-tuning", "linprobe": "probing"}


def add_json_arg(parser: argparse.ArgumentParser) -> None:
    """``--json``: the result as one JSON line instead of the summary."""
    parser.add_argument("--json", action="store_true",
                        help="print the result as one JSON line (for scripts) instead of the summary")


def render(done: str, outputs: Mapping[str, Any] | None = None, next_steps: Iterable[tuple[str, str]] = (),
           notes: Iterable[str] = ()) -> str:
    """The summary text: ``done``, then the outputs that exist (name: path), notes, and the next commands."""
    outs = {k: str(v) for k, v in (outputs or {}).items() if v}
    width = max(map(len, outs), default=0) + 1
    lines = [done, *(f"  {k + ':':<{width}} {v}" for k, v in outs.items()), *(f"  note: {n}" for n in notes)]
    steps = list(next_steps)
    if steps:
        lines.append("next:")
        lines += [f"  {cmd}" + (f"    ({why})" if why else "") for cmd, why in steps]
    return "\n".join(lines)


def finish(args: argparse.Namespace, result: Mapping[str, Any], done: str, outputs: Mapping[str, Any] | None = None,
           next_steps: Iterable[tuple[str, str]] = (), notes: Iterable[str] = ()) -> None:
    """Print the end of a command on the main process (one under torchrun): the summary, or with
    ``--json`` the ``result`` as one JSON line."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    if getattr(args, "json", False):
        print(json.dumps(dict(result), default=str))
    else:
        print(render(done, outputs, next_steps, notes))


def plural(n: int, word: str) -> str:
    """``"1 video"``, ``"2 videos"``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def q(path: Any) -> str:
    """``path`` quoted for a shell command line."""
    return shlex.quote(str(path))


def failed_note(failed: list[str]) -> list[str]:
    """The note on videos that could not be decoded (none: no note): how many, and the first three."""
    if not failed:
        return []
    more = " ..." if len(failed) > 3 else ""
    return [f"{plural(len(failed), 'video')} could not be decoded and are listed, unscored: "
            f"{'; '.join(failed[:3])}{more}"]


def existing(path: Path) -> Path | None:
    return path if path.exists() else None


def run_summary(args: argparse.Namespace, job: str, cfg: Any, summary: Mapping[str, Any],
                keys: tuple[str, ...]) -> None:
    """The end of ``maest pretrain / finetune / linprobe`` (``job``): steps, loss and validation, the run
    folder's files, and the next commands (report, test / predict or fine-tuning, and how to resume)."""
    out, ckpt = Path(cfg.train.output_dir), summary.get("checkpoint")
    loss = f", last loss {summary['loss']:.4f}" if summary.get("loss") is not None else ""
    done = (f"{JOBS[job]} finished: {summary['steps']} steps{loss} ({summary['precision']}, "
            f"peak lr {summary['lr']:.2e})")
    if summary.get("val"):
        last = summary["val"][-1]
        done += f"; val top-1 {last['val_top1']:.2f}% (epoch {last['epoch']})"
    outputs = {"run folder": out, "checkpoint": ckpt, "metrics": existing(out / "metrics.jsonl"),
               "curves": existing(out / "curves.png"), "config": existing(out / "config.json")}
    notes = []
    if summary.get("skipped"):
        notes.append(f"skipped {len(summary['skipped'])} unreadable video reads ({len(set(summary['skipped']))} "
                     "files); their paths are in the log and the report")
    if summary.get("motion_fallback"):
        notes.append(f"{summary['motion_fallback']} clips had no motion vectors or flow and were masked randomly "
                     "(motion_fallback_clips per epoch in metrics.jsonl)")
    steps = [(f"maest report {q(out)}", "one HTML page: curves, metrics, config")]
    if ckpt and job == "pretrain":
        steps += [(f"maest finetune TRAIN_DATA --init {q(ckpt)}", "a classifier from these weights"),
                  (f"maest reconstruct VIDEO --checkpoint {q(ckpt)}", "what the MAE sees and rebuilds")]
    elif ckpt:
        steps += [(f"maest test {q(ckpt)} TEST_DATA", "top-1, per-class accuracy, confusion matrix"),
                  (f"maest predict {q(ckpt)} VIDEO", "the classes of any video")]
    steps.append((f"maest {job} --config {q(out / 'config.json')} --resume{_further(cfg.train, summary)}",
                  "continue this run"))
    finish(args, {k: summary[k] for k in keys if k in summary}, done, outputs, steps, notes)


def _further(t: Any, summary: Mapping[str, Any]) -> str:
    """The ``--set`` that lets a resumed run train on: twice the step or epoch budget it has used up (none
    when it stopped early and ``--resume`` alone continues it)."""
    if t.max_steps and summary["steps"] >= t.max_steps:
        return f" --set train.max_steps={2 * t.max_steps}"
    if summary["steps"] >= t.epochs * summary.get("steps_per_epoch", 0):
        return f" --set train.epochs={2 * t.epochs}"
    return ""
