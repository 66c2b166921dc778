"""``maest report RUN_DIR``: one self-contained HTML page (figures embedded as base64 PNG, inline CSS,
nothing fetched from the network) summarising a run folder: its resolved config, the training
curves, final and best metrics, the test's confusion matrix and per-class accuracy, a reconstruction
figure (pre-training runs), skipped videos and checkpoints. Runs still in progress (or stopped)
are reported from what they have written so far, and the page says what is missing and why.

What a run folder holds is read by :mod:`maest.figures.run_folder`; the sections' HTML is built by
:mod:`maest.figures.report_html`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from maest.figures import plots
from maest.figures import report_html as page
from maest.figures.run_folder import Run, first_video, read_run

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


# ----------------------------------------------------------------------------------- reconstruction

def reconstruction_grid(checkpoint: Path, video: Path, scale: int = 3, title: str = "") -> np.ndarray:
    """The ``maest reconstruct`` figure (honest mode, the run's mask ratio) of ``video``, labelled as the
    command labels it: uint8 (H, W, 3), upscaled ``scale`` times. This is the one place the report loads a
    checkpoint."""
    from maest.figures.reconstruction import labelled_figure, reconstruction_panels

    rec = reconstruction_panels(checkpoint, video)
    return labelled_figure(rec.panels, title or f"{video.name}, {checkpoint.name}", scale, rec.mask_ratio)


def _section_reconstruction(run: Run, video: Path | None, notes: list[str]) -> str:
    if run.kind != "pre-training":
        return f'<p class="note">Not applicable: a {page.esc(run.kind)} run has no decoder to reconstruct with.</p>'
    if not run.checkpoints:
        return '<p class="note">No checkpoint yet: the figure appears once the first one is written.</p>'
    video = video or first_video(run)
    if video is None:
        notes.append("reconstruction: the run's data.source (config.json) has no readable video here; "
                     "pass --video PATH")
        return '<p class="note">No video to reconstruct (see "What is missing").</p>'
    step, ckpt = run.checkpoints[-1]
    try:
        figure = reconstruction_grid(ckpt, video, title=f"{video.name}, {ckpt.name} (step {step})")
    except Exception as e:  # noqa: BLE001 - one figure must not cost the whole page; the reason is shown
        notes.append(f"reconstruction failed for {ckpt}: {type(e).__name__}: {e}")
        return '<p class="note">The reconstruction could not be made (see "What is missing").</p>'
    buf = io.BytesIO()
    Image.fromarray(figure).save(buf, format="PNG")
    return (page.img_tag(buf.getvalue(), "reconstruction") +
            f'<p class="note">{page.esc(video)} with the newest checkpoint. Hidden patches borrow mean and variance '
            "from the nearest visible patch (the honest mode of <code>maest reconstruct</code>).</p>")


def build_html(run_dir: str | Path, compare: list[str | Path] = (), video: str | Path | None = None) -> str:
    """The report page of ``run_dir`` (curves of the ``compare`` runs overlaid) as one HTML string."""
    plots.require()  # one clear line when the plots extra is missing, before any work
    run = read_run(run_dir)
    others = [read_run(c) for c in compare]
    notes: list[str] = []
    body = {
        "run": page.section_run(run, others),
        "metrics": page.section_metrics([run, *others]),
        "curves": page.section_curves([run, *others]),
        "test": page.section_test(run),
        "reconstruction": _section_reconstruction(run, Path(video) if video else None, notes),
        "skipped": page.section_skipped(run),
        "checkpoints": page.section_checkpoints(run),
        "config": page.section_config(run),
    }
    body["missing"] = page.section_missing([run, *others], notes)  # last: the other sections add notes
    return page.document(run, SECTIONS, body)


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
    text = build_html(run_dir, compare, video)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
