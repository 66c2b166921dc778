"""``maest report RUN_DIR``: one self-contained HTML page (figures embedded as base64 PNG, inline CSS,
nothing fetched from the network) summarising a run folder: its resolved config, the training
curves, final and best metrics, the test's confusion matrix and per-class accuracy, a reconstruction
figure (pre-training runs), skipped videos and checkpoints. Runs still in progress (or stopped)
are reported from what they have written so far, and the page says what is missing and why.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as _dt
import html
import io
import json
import logging
import os
import re
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maest.figures import plots
from maest.upgrade import upgrade_run_config

log = logging.getLogger("maest")

SECTIONS = {  # id -> heading, in page order
    "run": "Run",
    "missing": "What is missing",
    "metrics": "Final and best metrics",
    "curves": "Training curves",
    "test": "Test: confusion matrix and per-class accuracy",
    "reconstruction": "Reconstruction",
    "skipped": "Skipped videos",
    "checkpoints": "Checkpoints",
    "config": "Resolved config",
}
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
        except json.JSONDecodeError:
            missing.append(f"{cfg_path} is not valid JSON: the config is not shown")
    else:
        missing.append("config.json: the run has not started training yet (it is written before the first step)")
    records, bad = _read_records(path / "metrics.jsonl")
    if not (path / "metrics.jsonl").is_file():
        missing.append("metrics.jsonl: no curves or metrics yet (the first record comes after train.log_every steps)")
    elif bad:
        missing.append(f"{bad} unreadable line(s) in metrics.jsonl were skipped (a run may be writing it now)")
    checkpoints = sorted((int(m.group(1)), p) for p in path.glob("checkpoint-*.pt")
                         if (m := CHECKPOINT.search(p.name)))
    tests = []
    for res in sorted([*path.glob("results.json"), *path.glob("*/results.json")]):
        try:
            data = json.loads(res.read_text())
        except (OSError, json.JSONDecodeError):
            missing.append(f"{res} could not be read as JSON")
            continue
        if isinstance(data, dict) and "confusion" in data:
            tests.append((res, data))
    if config is None and not records and not checkpoints:
        raise FileNotFoundError(f"{path} holds no config.json, metrics.jsonl or checkpoint-*.pt: is it a maest "
                                "run folder (the --output-dir / train.output_dir of a run)?")
    run = Run(path, config, records, plots.split_records(records), checkpoints, tests, missing)
    _note_missing(run)
    return run


def _upgraded(config: dict[str, Any]) -> dict[str, Any]:
    """The run config in today's layout; one too damaged to upgrade is shown as it is."""
    try:
        return upgrade_run_config(config)
    except (TypeError, ValueError, AttributeError, KeyError):
        return config


def _read_records(path: Path) -> tuple[list[dict[str, Any]], int]:
    if not path.is_file():
        return [], 0
    records, bad = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(rec, dict) and "step" in rec:
            records.append(rec)
    return records, bad


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
            rows.append(("training time (first to last record)", _duration(tr[-1]["time"] - tr[0]["time"])))
    val = run.parts["val"]
    if val:
        last = val[-1]
        final = "final" if total and run.last_step >= total else "latest"
        rows.append((f"{final} val top-1 / top-5", f"{last['val_top1']:.2f}% / {last['val_top5']:.2f}% "
                                                f"(epoch {last.get('epoch', len(val))})"))
        best = max(val, key=lambda r: r["val_top1"])
        rows.append(("best val top-1", f"{best['val_top1']:.2f}% (epoch {best.get('epoch', '?')})"))
    for path, res in run.tests:
        rows.append((f"test top-1 / top-5 ({path.parent.name}/{path.name})",
                     f"{res.get('top1', float('nan')):.2f}% / {res.get('top5', float('nan')):.2f}% over "
                     f"{res.get('videos', '?')} videos, {res.get('clips', '?')} clips x {res.get('crops', '?')} "
                     "crops"))
    skipped = sum(r.get("skipped_videos", 0) for r in run.parts["epoch"])
    rows.append(("skipped videos (training, all epochs)", str(skipped)))
    return rows


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    if d:
        return f"{d}d {h}h"
    return f"{h}h {rem // 60:02d}m" if h else f"{rem // 60}m {rem % 60:02d}s"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


# ----------------------------------------------------------------------------------- reconstruction

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


def reconstruction_png(checkpoint: Path, video: Path, scale: int = 3) -> bytes:
    """The ``maest reconstruct`` figure (honest mode, the run's mask ratio) of ``video`` as PNG bytes.

    This is the one place the report loads a checkpoint: it runs the reconstruct command's own code,
    so it follows that command's loader (``maest.load`` once the model-spec redesign lands)."""
    from maest.commands import reconstruct as cmd

    parser = argparse.ArgumentParser()
    cmd.configure(parser)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        out = Path(tmp) / "reconstruction"
        cmd.main(parser.parse_args([str(video), "--checkpoint", str(checkpoint), "--out", str(out),
                                    "--scale", str(scale), "--no-mp4"]))
        return out.with_suffix(".png").read_bytes()


# --------------------------------------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;border:1px solid #eee}pre{background:#f7f7f7;padding:.8em;overflow:auto;
font-size:.85em}.missing li{color:#8a4b00}.ok{color:#2a7a2a}.note{color:#666;font-size:.9em}
nav a{margin-right:1em}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(head: list[str] | None, rows: list[list[Any]], num: set[int] = frozenset()) -> str:
    out = ["<table>" + ("<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in head) + "</tr>" if head else "")]
    for r in rows:
        out.append("<tr>" + "".join(f'<td{" class=num" if i in num else ""}>{_esc(c)}</td>'
                                    for i, c in enumerate(r)) + "</tr>")
    return "\n".join(out) + "</table>"


def _figure_or_note(build, alt: str) -> str:
    try:
        return _img(plots.png_bytes(build()), alt)
    except ValueError as e:
        return f'<p class="note">{_esc(e)}</p>'


def _section_run(run: Run, compare: list[Run]) -> str:
    rows = [["folder", str(run.path)], ["kind", run.kind]]
    cfg = run.config or {}
    model = cfg.get("model") or {}
    if model.get("name"):
        rows.append(["model", model["name"]])
    if (cfg.get("data") or {}).get("source"):
        rows.append(["data", cfg["data"]["source"]])
    if cfg.get("init"):
        rows.append(["initialised from", cfg["init"]])
    total = run.planned_steps()
    state = "no training record yet"
    if run.parts["train"]:
        state = "finished" if total and run.last_step >= total else "in progress or stopped"
        state += f" at step {run.last_step}" + (f" of {total}" if total else "")
    rows.append(["status", state])
    times = [r["time"] for r in run.records if isinstance(r.get("time"), (int, float))]
    if times:
        ago = _dt.datetime.now().timestamp() - max(times)
        rows.append(["last record", f"{_dt.datetime.fromtimestamp(max(times)):%Y-%m-%d %H:%M:%S} "
                                    f"({_duration(max(ago, 0))} ago)"])
    for other in compare:
        rows.append(["compared with", f"{other.path} ({other.kind}, step {other.last_step})"])
    return _table(None, rows)


def _section_missing(runs: list[Run], notes: list[str]) -> str:
    items = [f"{r.name}: {m}" if len(runs) > 1 else m for r in runs for m in r.missing] + notes
    if not items:
        return '<p class="ok">Nothing: the run is complete and every section below has its content.</p>'
    return '<ul class="missing">' + "".join(f"<li>{_esc(i)}</li>" for i in items) + "</ul>"


def _section_metrics(runs: list[Run]) -> str:
    if len(runs) == 1:
        return _table(["metric", "value"], [list(r) for r in metric_rows(runs[0])])
    per = [dict(metric_rows(r)) for r in runs]
    names = list(dict.fromkeys(k for p in per for k in p))
    return _table(["metric", *[r.name for r in runs]], [[n, *[p.get(n, "-") for p in per]] for n in names])


def _unique_names(runs: list[Run]) -> list[str]:
    names = [r.name for r in runs]
    if len(set(names)) < len(names):
        names = [str(r.path) for r in runs]
    return names


def _section_curves(runs: list[Run]) -> str:
    if not any(r.parts["train"] for r in runs):
        return '<p class="note">No training records yet: curves appear after the first logged step.</p>'
    names = _unique_names(runs)
    title = "Training curves" if len(runs) == 1 else "Training curves: " + " vs ".join(names)
    fig = _figure_or_note(lambda: plots.curves_figure({n: r.records for n, r in zip(names, runs, strict=True)},
                                                      title=title), "training curves")
    note = ('<p class="note">Loss: raw values (faint) and an exponential moving average (solid); lr of the '
            "peak parameter group; gradient norm before clipping; clips/s over all processes.</p>")
    return fig + note


def _section_test(run: Run) -> str:
    if run.kind == "pre-training":
        return '<p class="note">Not applicable: a pre-training run has no classifier to test.</p>'
    if not run.tests:
        return '<p class="note">No test results in this run folder (see "What is missing").</p>'
    out = []
    for path, res in run.tests:
        classes = res.get("classes") or [str(i) for i in range(len(res["confusion"]))]
        out.append(f"<h3>{_esc(path)}</h3>")
        out.append(f"<p>top-1 {res.get('top1', float('nan')):.2f}%, top-5 {res.get('top5', float('nan')):.2f}% "
                   f"over {_esc(res.get('videos', '?'))} videos; checkpoint {_esc(res.get('checkpoint', '?'))}; "
                   f"data {_esc(res.get('data', '?'))}</p>")
        out.append(_figure_or_note(lambda c=classes, r=res: plots.confusion_figure(r["confusion"], c),
                                   "confusion matrix"))
        per = res.get("per_class") or {}
        out.append(_figure_or_note(lambda p=per: plots.per_class_figure(p), "per-class accuracy"))
        totals = [sum(row) for row in res["confusion"]]
        rows = sorted(([k, "-" if v is None else f"{100 * v:.1f}", n] for (k, v), n in zip(per.items(), totals,
                                                                                                 strict=False)),
                      key=lambda r: (r[1] == "-", float(r[1]) if r[1] != "-" else 0.0))
        out.append(f"<details><summary>per-class accuracy table ({len(rows)} classes, worst first)</summary>"
                   + _table(["class", "accuracy (%)", "test videos"], rows, num={1, 2}) + "</details>")
    return "\n".join(out)


def _section_reconstruction(run: Run, video: Path | None, notes: list[str]) -> str:
    if run.kind != "pre-training":
        return f'<p class="note">Not applicable: a {_esc(run.kind)} run has no decoder to reconstruct with.</p>'
    if not run.checkpoints:
        return '<p class="note">No checkpoint yet: the figure appears once the first one is written.</p>'
    video = video or first_video(run)
    if video is None:
        notes.append("reconstruction: the run's data.source (config.json) has no readable video here; "
                     "pass --video PATH")
        return '<p class="note">No video to reconstruct (see "What is missing").</p>'
    step, ckpt = run.checkpoints[-1]
    try:
        png = reconstruction_png(ckpt, video)
    except Exception as e:  # noqa: BLE001 - one figure must not cost the whole page; the reason is shown
        notes.append(f"reconstruction failed for {ckpt}: {type(e).__name__}: {e}")
        return '<p class="note">The reconstruction could not be made (see "What is missing").</p>'
    ratio = (((run.config or {}).get("model") or {}).get("mask") or {}).get("ratio")
    masked = f"masked input\n({ratio:.0%} removed)" if isinstance(ratio, float) else "masked input"
    png = _labelled_reconstruction(png, ["original", masked, "reconstruction", "reconstruction\n+ visible patches"],
                                   f"{video.name}, {ckpt.name} (step {step})")
    return (_img(png, "reconstruction") +
            f'<p class="note">{_esc(video)} with the newest checkpoint. Hidden patches borrow mean and variance '
            "from the nearest visible patch (the honest mode of <code>maest reconstruct</code>).</p>")


def _labelled_reconstruction(png: bytes, rows: list[str], title: str) -> bytes:
    """The reconstruct command's grid with its rows and frames named (matplotlib)."""
    import numpy as np
    from PIL import Image

    from maest.figures.reconstruction import GAP

    grid = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    # columns: frames of equal width separated by GAP * scale white pixels; the panel is as high as wide / rows
    h = (grid.shape[0] + GAP * 3) // len(rows)  # height of one row incl. its gap (scale 3)
    frames = max(1, round((grid.shape[1] + GAP * 3) / h)) if h else 1
    return plots.png_bytes(plots.reconstruction_figure(grid, rows, frames, title))


def _section_skipped(run: Run) -> str:
    ep = run.parts["epoch"]
    out = []
    if ep:
        total = sum(r.get("skipped_videos", 0) for r in ep)
        # epoch_end is 0-based in metrics.jsonl; shown 1-based like the validation epochs
        bad = [[r["epoch_end"] + 1 if isinstance(r.get("epoch_end"), int) else "?", r["step"], r["skipped_videos"]]
               for r in ep if r.get("skipped_videos")]
        if total:
            out.append(f"<p>Training: {total} unreadable video read(s) over {len(ep)} epoch(s); each was replaced "
                       "by another video (never by zeros) and its path logged once in the training log.</p>")
        else:
            out.append(f'<p class="ok">Training: none in {len(ep)} finished epoch(s).</p>')
        if bad:
            out.append(_table(["epoch", "step", "skipped"], bad, num={0, 1, 2}))
    else:
        out.append('<p class="note">No epoch has finished yet: the count is written at the end of each epoch.</p>')
    failed_val = [[r.get("epoch", "?"), r["val_failed"]] for r in run.parts["val"] if r.get("val_failed")]
    if failed_val:
        out.append("<p>Validation videos that could not be decoded (not scored):</p>"
                   + _table(["epoch", "failed"], failed_val, num={0, 1}))
    for path, res in run.tests:
        failed = res.get("failed") or []
        if failed:
            out.append(f"<p>Test ({_esc(path.parent.name)}): {len(failed)} video(s) not decoded, not scored:</p>"
                       "<ul>" + "".join(f"<li><code>{_esc(f)}</code></li>" for f in failed[:50]) + "</ul>")
    return "\n".join(out)


def _section_checkpoints(run: Run) -> str:
    if not run.checkpoints:
        return '<p class="note">None yet.</p>'
    rows = []
    for step, p in run.checkpoints:
        try:
            st = p.stat()
        except OSError:
            continue
        rows.append([p.name, step, _size(st.st_size), f"{_dt.datetime.fromtimestamp(st.st_mtime):%Y-%m-%d %H:%M:%S}"])
    return _table(["file", "step", "size", "written"], rows, num={1, 2})


def _section_config(run: Run) -> str:
    if run.config is None:
        return '<p class="note">No config.json yet.</p>'
    text = json.dumps(run.config, indent=2)
    return (f"<details><summary>{_esc(run.path / 'config.json')} ({text.count(chr(10)) + 1} lines; "
            f"pass it back with <code>--config</code>)</summary><pre>{_esc(text)}</pre></details>")


def build_html(run_dir: str | Path, compare: list[str | Path] = (), video: str | Path | None = None) -> str:
    """The report page of ``run_dir`` (curves of the ``compare`` runs overlaid) as one HTML string."""
    plots._mpl()  # one clear line when the plots extra is missing, before any work
    run = read_run(run_dir)
    others = [read_run(c) for c in compare]
    notes: list[str] = []
    body = {
        "run": _section_run(run, others),
        "metrics": _section_metrics([run, *others]),
        "curves": _section_curves([run, *others]),
        "test": _section_test(run),
        "reconstruction": _section_reconstruction(run, Path(video) if video else None, notes),
        "skipped": _section_skipped(run),
        "checkpoints": _section_checkpoints(run),
        "config": _section_config(run),
    }
    body["missing"] = _section_missing([run, *others], notes)  # last: the other sections add notes
    from maest import __version__

    now = _dt.datetime.now().astimezone()
    nav = "".join(f'<a href="#{k}">{_esc(v)}</a>' for k, v in SECTIONS.items())
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>maest report: {_esc(run.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>maest report: {_esc(run.name)}</h1>",
        f'<p class="note">{_esc(run.path.resolve())} &middot; {_esc(run.kind)} &middot; written {now:%Y-%m-%d %H:%M %Z}'
        f" by maest {_esc(__version__)}</p>",
        f"<nav>{nav}</nav>",
    ]
    for key, heading in SECTIONS.items():
        parts.append(f'<section id="{key}"><h2>{_esc(heading)}</h2>\n{body[key]}\n</section>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(run_dir: str | Path, out: str | Path | None = None, compare: list[str | Path] = (),
                 video: str | Path | None = None, force: bool = False) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``run_dir/report.html``) atomically.

    Raises:
        ValueError: ``out`` exists and ``force`` is False (a user's file is never replaced silently).
    """
    out = Path(out) if out else Path(run_dir) / "report.html"
    if out.exists() and not force:
        raise ValueError(f"{out} exists; pass --force to replace it, or --out another file")
    if out.parent and not out.parent.is_dir():
        raise FileNotFoundError(f"folder {out.parent} for the report does not exist")
    page = build_html(run_dir, compare, video)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
