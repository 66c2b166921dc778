"""The HTML of the report's sections (see :mod:`maest.figures.report`): each takes what
:func:`~maest.figures.run_folder.read_run` read and returns an HTML fragment, with its figures embedded
as base64 PNG and a note in place of what is not there yet."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from typing import Any

from maest.figures import plots
from maest.figures.run_folder import Run, duration, metric_rows

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


def esc(x: Any) -> str:
    return html.escape(str(x))


def img_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(head: list[str] | None, rows: list[list[Any]], num: set[int] = frozenset()) -> str:
    out = ["<table>" + ("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>" if head else "")]
    for r in rows:
        out.append("<tr>" + "".join(f'<td{" class=num" if i in num else ""}>{esc(c)}</td>'
                                    for i, c in enumerate(r)) + "</tr>")
    return "\n".join(out) + "</table>"


def _figure_or_note(build, alt: str) -> str:
    try:
        return img_tag(plots.png_bytes(build()), alt)
    except ValueError as e:
        return f'<p class="note">{esc(e)}</p>'


def section_run(run: Run, compare: list[Run]) -> str:
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
                                    f"({duration(max(ago, 0))} ago)"])
    for other in compare:
        rows.append(["compared with", f"{other.path} ({other.kind}, step {other.last_step})"])
    return _table(None, rows)


def section_missing(runs: list[Run], notes: list[str]) -> str:
    items = [f"{r.name}: {m}" if len(runs) > 1 else m for r in runs for m in r.missing] + notes
    if not items:
        return '<p class="ok">Nothing: the run is complete and every section below has its content.</p>'
    return '<ul class="missing">' + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def section_metrics(runs: list[Run]) -> str:
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


def section_curves(runs: list[Run]) -> str:
    if not any(r.parts["train"] for r in runs):
        return '<p class="note">No training records yet: curves appear after the first logged step.</p>'
    names = _unique_names(runs)
    title = "Training curves" if len(runs) == 1 else "Training curves: " + " vs ".join(names)
    fig = _figure_or_note(lambda: plots.curves_figure({n: r.records for n, r in zip(names, runs, strict=True)},
                                                      title=title), "training curves")
    note = ('<p class="note">Loss: raw values (faint) and an exponential moving average (solid); lr of the '
            "peak parameter group; gradient norm before clipping; clips/s over all processes.</p>")
    return fig + note


def section_test(run: Run) -> str:
    if run.kind == "pre-training":
        return '<p class="note">Not applicable: a pre-training run has no classifier to test.</p>'
    if not run.tests:
        return '<p class="note">No test results in this run folder (see "What is missing").</p>'
    out = []
    for path, res in run.tests:
        classes = res.get("classes") or [str(i) for i in range(len(res["confusion"]))]
        out.append(f"<h3>{esc(path)}</h3>")
        k, topk = plots.topk_entry(res) or (0, None)
        named = f", top-{k} {topk:.2f}%" if topk is not None else ""
        out.append(f"<p>top-1 {res.get('top1', float('nan')):.2f}%{named} "
                   f"over {esc(res.get('videos', '?'))} videos; checkpoint {esc(res.get('checkpoint', '?'))}; "
                   f"data {esc(res.get('data', '?'))}</p>")
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


def section_skipped(run: Run) -> str:
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
            out.append(f"<p>Test ({esc(path.parent.name)}): {len(failed)} video(s) not decoded, not scored:</p>"
                       "<ul>" + "".join(f"<li><code>{esc(f)}</code></li>" for f in failed[:50]) + "</ul>")
    return "\n".join(out)


def section_checkpoints(run: Run) -> str:
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


def section_config(run: Run) -> str:
    if run.config is None:
        return '<p class="note">No config.json yet.</p>'
    text = json.dumps(run.config, indent=2)
    return (f"<details><summary>{esc(run.path / 'config.json')} ({text.count(chr(10)) + 1} lines; "
            f"pass it back with <code>--config</code>)</summary><pre>{esc(text)}</pre></details>")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def document(run: Run, headings: dict[str, str], body: dict[str, str]) -> str:
    """The page: a head naming ``run``, a navigation bar, then each section of ``headings`` (id ->
    heading, in page order) with its HTML from ``body``."""
    from maest import __version__

    now = _dt.datetime.now().astimezone()
    nav = "".join(f'<a href="#{k}">{esc(v)}</a>' for k, v in headings.items())
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>maest report: {esc(run.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>maest report: {esc(run.name)}</h1>",
        f'<p class="note">{esc(run.path.resolve())} &middot; {esc(run.kind)} &middot; written {now:%Y-%m-%d %H:%M %Z}'
        f" by maest {esc(__version__)}</p>",
        f"<nav>{nav}</nav>",
    ]
    for key, heading in headings.items():
        parts.append(f'<section id="{key}"><h2>{esc(heading)}</h2>\n{body[key]}\n</section>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
