"""What a run folder holds, read without loading any checkpoint: its resolved config, the records of
metrics.jsonl (a run in progress works too), checkpoint names and test results, what is still
missing and why, and the final / best metrics (see :mod:`maest.figures.report` for the page)."""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maest.figures import plots
from maest.runs.metrics import scan_metrics
from maest.upgrade import upgrade_run_config

CHECKPOINT = re.compile(r"checkpoint-(\d+)\.pt$")


@dataclass
class Run:
    """What a run folder holds, read without loading any checkpoint."""

    path: Path
    config: dict[str, Any] | None
    records: list[dict[str, Any]]
    parts: dict[str, list[dict[str, Any]]]
    checkpoints: list[tuple[int, Path]]  # (step, file), oldest first
    tests: list[tuple[Path, dict[str, Any]]]  # (results.json, its content)
    missing: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name or str(self.path)

    @property
    def kind(self) -> str:
        """"pre-training", "fine-tuning", "probe", or "unknown" (no config.json yet)."""
        if self.config is None:
            return "unknown"
        if "mix" not in self.config:
            return "pre-training"
        probe = (self.config.get("model") or {}).get("probe", "none")
        return "probe" if probe not in (None, "none") else "fine-tuning"

    @property
    def last_step(self) -> int:
        steps = [r["step"] for r in self.records if isinstance(r.get("step"), int)]
        return max(steps, default=0)

    def planned_steps(self) -> int | None:
        """Steps the run was configured for: epochs x steps per epoch (read off a training record's
        ``epoch`` = step / steps_per_epoch), capped by ``train.max_steps``."""
        train = (self.config or {}).get("train", {})
        rec = next((r for r in self.parts["train"] if r.get("epoch")), None)
        if rec is None or "epochs" not in train:
            return None
        per_epoch = round(rec["step"] / rec["epoch"])
        total = per_epoch * int(train["epochs"])
        return min(total, train["max_steps"]) if train.get("max_steps") else total


def read_run(run_dir: str | Path) -> Run:
    """Read ``run_dir``'s config.json, metrics.jsonl (tolerating a line being written), checkpoint
    names and test results, and list what is missing.

    Raises:
        FileNotFoundError: ``run_dir`` is not a folder, or holds none of those files.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"run folder {path} does not exist; pass the --output-dir of a maest run")
    missing: list[str] = []
    cfg_path = path / "config.json"
    config = None
    if cfg_path.is_file():
        try:
            config = json.loads(cfg_path.read_text())
            if isinstance(config, dict):
                config = _upgraded(config)
        except (json.JSONDecodeError, UnicodeDecodeError):
            missing.append(f"{cfg_path} is not valid JSON: the config is not shown")
        if config is not None and (problem := config_problem(config)):
            missing.append(f"{cfg_path} is not a run config maest wrote ({problem}): the config is not shown or used")
            config = None
    else:
        missing.append("config.json: the run has not started training yet (it is written before the first step)")
    records, bad = scan_metrics(path / "metrics.jsonl")
    if not (path / "metrics.jsonl").is_file():
        missing.append("metrics.jsonl: no curves or metrics yet (the first record comes after train.log_every steps)")
    elif bad:
        missing.append(f"{bad} unreadable line(s) in metrics.jsonl were skipped (a run may be writing it now, or "
                       "a line is not a record maest wrote)")
    checkpoints = sorted((int(m.group(1)), p) for p in path.glob("checkpoint-*.pt")
                         if (m := CHECKPOINT.search(p.name)))
    tests = []
    for res in sorted([*path.glob("results.json"), *path.glob("*/results.json")]):
        try:
            data = json.loads(res.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            missing.append(f"{res} could not be read as JSON")
            continue
        bad_fields = [k for k in ("top1", "top5", "videos", "clips", "crops") if isinstance(data, dict) and k in data
                      and (not isinstance(data[k], (int, float)) or isinstance(data[k], bool))]
        if bad_fields:
            missing.append(f"{res}: {bad_fields[0]}={json.dumps(data[bad_fields[0]])[:40]} is not a number: "
                           "these test results are not shown")
        elif isinstance(data, dict) and "confusion" in data:
            tests.append((res, data))
    if config is None and not records and not checkpoints:
        raise FileNotFoundError(f"{path} holds no config.json, metrics.jsonl or checkpoint-*.pt: is it a maest "
                                "run folder (the --output-dir / train.output_dir of a run)?")
    run = Run(path, config, records, plots.split_records(records), checkpoints, tests, missing)
    _note_missing(run)
    return run


# the config values the report reads, and their JSON types (None: null allowed)
_READ = {("train", "epochs"): (int,), ("train", "max_steps"): (int, None), ("data", "source"): (str,),
         ("data", "layout"): (str,), ("data", "val_source"): (str,), ("model", "name"): (str,),
         ("model", "probe"): (str, None)}


def config_problem(config: Any) -> str | None:
    """What makes ``config`` (a parsed config.json) unusable for the report, or None: it must be an
    object of sections, and the values the report reads must have their types."""
    if not isinstance(config, dict):
        return f"it holds a JSON {type(config).__name__}, not an object of config sections"
    for name in ("model", "data", "optim", "train", "mix"):
        if name in config and not isinstance(config[name], dict):
            return f"{name} is a {type(config[name]).__name__}, not a section"
    if not isinstance(config.get("init", ""), str):
        return "init is not a path"
    for (section, key), types in _READ.items():
        values = config.get(section, {})
        if key not in values or values[key] is None and None in types:
            continue
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, tuple(t for t in types if t is not None)):
            return f"{section}.{key}={json.dumps(value)[:40]}"
    return None


def _upgraded(config: dict[str, Any]) -> dict[str, Any]:
    """The run config in today's layout; one too damaged to upgrade is shown as it is."""
    try:
        return upgrade_run_config(config)
    except (TypeError, ValueError, AttributeError, KeyError):
        return config


def _note_missing(run: Run) -> None:
    m = run.missing
    total = run.planned_steps()
    if run.parts["train"] and total and run.last_step < total:
        m.append(f"the run is in progress or stopped: step {run.last_step} of {total} "
                 f"({100 * run.last_step / total:.0f}%); 'final' metrics are the latest so far")
    if (run.path / "metrics.jsonl").is_file() and not run.parts["train"]:
        m.append("no training record (loss) in metrics.jsonl yet: no curves (the first comes after "
                 "train.log_every steps)")
    if not run.checkpoints:
        m.append("no checkpoint-*.pt yet (one is written at the end of each epoch)")
    if run.kind in ("fine-tuning", "probe"):
        if not run.parts["val"]:
            has_val = bool(((run.config or {}).get("data") or {}).get("val_source"))
            m.append("no validation records yet (written after each epoch)" if has_val else
                     "no validation records: the run has no validation set (finetune --val)")
        if not run.tests:
            m.append(f"no test results: run `maest test {run.path}/checkpoint-....pt DATA` "
                     f"(it writes {run.path / 'test' / 'results.json'})")


# ------------------------------------------------------------------------------------------ metrics

def metric_rows(run: Run) -> list[tuple[str, str]]:
    """(name, value) rows: final and best loss, throughput, validation and test accuracy."""
    rows: list[tuple[str, str]] = []
    tr = run.parts["train"]
    total = run.planned_steps()
    rows.append(("steps", f"{run.last_step}" + (f" of {total}" if total else "")))
    if tr:
        last = tr[-1]
        rows.append(("first logged loss", f"{tr[0]['loss']:.4f} (step {tr[0]['step']})"))
        final = "final" if total and run.last_step >= total else "latest"
        rows.append((f"{final} loss", f"{last['loss']:.4f} (step {last['step']})"))
        best = min(tr, key=lambda r: r["loss"])
        rows.append(("lowest logged loss", f"{best['loss']:.4f} (step {best['step']})"))
        sm = plots.smooth([r["loss"] for r in tr])
        i = min(range(len(sm)), key=sm.__getitem__)
        rows.append(("lowest smoothed loss", f"{sm[i]:.4f} (step {tr[i]['step']})"))
        speeds = [r["clips_per_s"] for r in tr if r.get("clips_per_s")]
        if speeds:
            rows.append(("throughput (median)", f"{statistics.median(speeds):.1f} clips/s"))
        if len(tr) > 1 and tr[-1].get("time") and tr[0].get("time"):
            rows.append(("training time (first to last record)", duration(tr[-1]["time"] - tr[0]["time"])))
    val = run.parts["val"]
    if val:
        last = val[-1]
        final = "final" if total and run.last_step >= total else "latest"
        k, topk = plots.topk_entry(last, "val_") or (0, None)
        name, value = (f" / top-{k}", f" / {topk:.2f}%") if topk is not None else ("", "")
        rows.append((f"{final} val top-1{name}",
                     f"{last['val_top1']:.2f}%{value} (epoch {last.get('epoch', len(val))})"))
        best = max(val, key=lambda r: r["val_top1"])
        rows.append(("best val top-1", f"{best['val_top1']:.2f}% (epoch {best.get('epoch', '?')})"))
    for path, res in run.tests:
        k, topk = plots.topk_entry(res) or (0, None)
        name, value = (f" / top-{k}", f" / {topk:.2f}%") if topk is not None else ("", "")
        rows.append((f"test top-1{name} ({path.parent.name}/{path.name})",
                     f"{res.get('top1', float('nan')):.2f}%{value} over "
                     f"{res.get('videos', '?')} videos, {res.get('clips', '?')} clips x {res.get('crops', '?')} "
                     "crops"))
    skipped = sum(r.get("skipped_videos", 0) for r in run.parts["epoch"])
    rows.append(("skipped videos (training, all epochs)", str(skipped)))
    return rows


def duration(seconds: float) -> str:
    """``seconds`` as "1d 2h", "3h 04m" or "5m 06s"."""
    seconds = int(round(seconds))
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    if d:
        return f"{d}d {h}h"
    return f"{h}h {rem // 60:02d}m" if h else f"{rem // 60}m {rem % 60:02d}s"


def first_video(run: Run) -> Path | None:
    """The first video of the run's training source (config ``data.source``), looked up as written
    and relative to the run folder's parents (a demo run stores a path relative to where it ran)."""
    data = (run.config or {}).get("data") or {}
    source = data.get("source")
    if not source:
        return None
    from maest.data import dataset_from_source

    candidates = [Path(source), *(p / source for p in run.path.resolve().parents[:3])]
    for cand in candidates:
        if not cand.exists():
            continue
        try:
            items = getattr(dataset_from_source(cand, layout=data.get("layout", "auto")), "items", None)
        except (ValueError, FileNotFoundError, OSError):
            continue
        if items:
            video = Path(items[0][0])
            if video.is_file():
                return video
    return None
