"""Figures with matplotlib (the optional ``plots`` extra): training curves, the confusion matrix,
per-class accuracy (the benchmarks' charts build on the helpers here: :mod:`maest.bench.plots`; the
labelled reconstruction figure is drawn with PIL by :mod:`maest.figures.reconstruction`).

Every function builds a :class:`matplotlib.figure.Figure` drawn by the Agg canvas without touching
pyplot's global state, so it is safe in scripts, notebooks and training processes alike. Write one
with :func:`save` (atomic) or turn it into PNG bytes with :func:`png_bytes` (the report embeds those).
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("maest")

MISSING = "matplotlib is not installed; install the plots extra: pip install 'maest[plots]'"
DPI = 100
# annotate confusion cells with counts / percentages up to this many classes
ANNOTATE_MAX = 20
# at most this many class names along each confusion axis (every k-th class beyond)
MAX_TICKS = 50


def _mpl():
    """matplotlib, its Figure and its Agg canvas; the one-line RuntimeError when it is missing."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise RuntimeError(MISSING) from e
    return matplotlib, Figure, FigureCanvasAgg


def require() -> None:
    """Raise the one-line RuntimeError when matplotlib is missing: call it before minutes of work whose
    result is a figure."""
    _mpl()


def available() -> bool:
    """True when matplotlib can be imported."""
    try:
        _mpl()
    except RuntimeError:
        return False
    return True


def new_figure(width: float, height: float):
    """An empty Figure of ``width`` x ``height`` inches on its own Agg canvas (no pyplot state)."""
    _, Figure, FigureCanvasAgg = _mpl()
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def save(fig, path: str | Path) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(png_bytes(fig))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------------------------- curves

def smooth(values: Sequence[float]) -> list[float]:
    """Debiased exponential moving average (TensorBoard's smoothing) whose span grows with the series:
    3 points, or a tenth of them on long runs, so a 30-point demo and a 10k-point run both show a trend."""
    n = len(values)
    span = max(3, n // 10)
    w = 1 - 2 / (span + 1)
    out, avg = [], 0.0
    for i, v in enumerate(values):
        avg = w * avg + (1 - w) * v
        out.append(avg / (1 - w ** (i + 1)) if w > 0 else v)
    return out


def topk_entry(rec: dict[str, Any], prefix: str = "") -> tuple[int, float] | None:
    """(k, accuracy) of the top-k besides top-1 in a test result or validation record (``prefix`` "val_"):
    top-5, or top-k for k = the class count with 5 classes or fewer (earlier files: top-5); None for one class."""
    ks = [int(m.group(1)) for key in rec if (m := re.fullmatch(re.escape(prefix) + r"top(\d+)", key))]
    k = max((k for k in ks if k > 1), default=None)
    return None if k is None else (k, rec[f"{prefix}top{k}"])


def split_records(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``metrics.jsonl`` records by kind: "train" (loss, lr, grad_norm, clips_per_s per log step),
    "val" (val_top1 and val_top5, or val_top<k> for k <= 5 classes, per epoch) and "epoch" (skipped_videos
    at each epoch end). A step logged twice (a resumed run repeats the steps after its checkpoint) keeps its
    last record."""
    kinds: dict[str, dict[int, dict[str, Any]]] = {"train": {}, "val": {}, "epoch": {}}
    for r in records:
        if "loss" in r:
            kinds["train"][r["step"]] = r
        elif "val_top1" in r:
            kinds["val"][r["step"]] = r
        elif "skipped_videos" in r:
            kinds["epoch"][r["step"]] = r
    return {k: [v[s] for s in sorted(v)] for k, v in kinds.items()}


CURVE_PANELS = (  # key, title, y label
    ("loss", "Training loss", "loss (mean over each log interval)"),
    ("lr", "Learning rate", "lr (peak group)"),
    ("grad_norm", "Gradient norm", "L2 norm before clipping"),
    ("clips_per_s", "Throughput", "clips/s (all processes)"),
)


def curves_figure(runs: dict[str, list[dict[str, Any]]], title: str = "Training curves"):
    """Loss (raw and smoothed), lr, gradient norm, clips/s per optimizer step and, when any run has
    validation records, val top-1 / top-5 per epoch. ``runs`` maps a legend name to its
    ``metrics.jsonl`` records; several runs are overlaid in one colour each.

    Raises:
        ValueError: when no run holds a single training record.
    """
    _mpl()  # the one-line error before anything else
    from matplotlib.ticker import MaxNLocator

    parts = {name: split_records(recs) for name, recs in runs.items()}
    if not any(p["train"] for p in parts.values()):
        raise ValueError("no training records (loss) to plot yet")
    keys = [k for k in CURVE_PANELS if any(k[0] in r for p in parts.values() for r in p["train"])]
    has_val = any(p["val"] for p in parts.values())
    n = len(keys) + has_val
    cols = 2 if n > 1 else 1
    rows = math.ceil(n / cols)
    fig = new_figure(6.0 * cols, 3.4 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    colors = [f"C{i % 10}" for i in range(len(parts))]
    several = len(parts) > 1
    few = sum(len(p["train"]) for p in parts.values()) < 12  # mark the points of short (or just started) runs
    for ax, (key, panel_title, ylabel) in zip(axes, keys, strict=False):
        for color, (name, p) in zip(colors, parts.items(), strict=True):
            pts = [(r["step"], r[key]) for r in p["train"] if r.get(key) is not None]
            if not pts:
                continue
            x, y = zip(*pts, strict=True)
            label = name if several else None
            if key == "loss":
                ax.plot(x, y, color=color, alpha=0.3, lw=1, label=None if several else "raw")
                ax.plot(x, smooth(y), color=color, lw=2, label=f"{name} (smoothed)" if several else "smoothed")
            else:
                ax.plot(x, y, color=color, lw=1.5, label=label, marker="o" if few else None, ms=3)
        if key == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.set_title(panel_title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if key == "loss" or several:
            ax.legend(fontsize="small")
    if has_val:
        ax = axes[len(keys)]
        for color, (name, p) in zip(colors, parts.items(), strict=True):
            if not p["val"]:
                continue
            ep = [r.get("epoch", i + 1) for i, r in enumerate(p["val"])]
            prefix = f"{name} " if several else ""
            ax.plot(ep, [r["val_top1"] for r in p["val"]], color=color, lw=2, marker="o", label=f"{prefix}top-1")
            topk = [(e, t) for e, r in zip(ep, p["val"], strict=True) if (t := topk_entry(r, "val_")) is not None]
            if topk:
                ax.plot([e for e, _ in topk], [t[1] for _, t in topk], color=color, lw=1.5, ls="--", marker="s",
                        label=f"{prefix}top-{topk[-1][1][0]}")
        ax.set_title("Validation accuracy")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 103)  # a 100% point stays whole
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="lower right")
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig


def write_run_curves(run_dir: str | Path, name: str = "curves.png") -> Path | None:
    """``run_dir/curves.png`` from ``run_dir/metrics.jsonl``. Never raises: the end of a training run
    must not fail on a figure, so a missing matplotlib or a plotting error is one warning line."""
    from maest.runs.metrics import read_metrics

    run_dir = Path(run_dir)
    try:
        metrics = run_dir / "metrics.jsonl"
        records = read_metrics(metrics) if metrics.is_file() else []
        if not any("loss" in r for r in records):
            return None
        fig = curves_figure({run_dir.name: records}, title=f"Training curves: {run_dir}")
        path = save(fig, run_dir / name)
    except Exception as e:  # noqa: BLE001 - reported, never fatal
        log.warning("training curves not written: %s", e)
        return None
    log.info("training curves: %s", path)
    return path


# ---------------------------------------------------------------------------------- confusion matrix

def confused_pairs(cm, classes: Sequence[str], top: int = 20) -> list[tuple[str, str, int, float]]:
    """The ``top`` largest off-diagonal cells: (true, predicted, count, % of the true class)."""
    import numpy as np

    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    totals = cm.sum(axis=1)
    flat = np.argsort(off, axis=None, kind="stable")[::-1][:top]
    out = []
    for f in flat:
        i, j = divmod(int(f), cm.shape[1])
        if off[i, j] == 0:
            break
        out.append((classes[i], classes[j], int(off[i, j]), 100.0 * off[i, j] / max(int(totals[i]), 1)))
    return out


def _short(name: str, n: int = 22) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def confusion_figure(cm, classes: Sequence[str], title: str = "Confusion matrix", top_pairs: int = 20):
    """Rows = true class, columns = predicted class, coloured by the row-normalised share (a colour
    bar in %). Up to 20 classes each cell shows its count and row percentage and every class is
    named; beyond, at most 50 names per axis (every k-th class) and a second panel lists the
    ``top_pairs`` most confused (true -> predicted) pairs, so 400 classes stay legible."""
    import numpy as np

    _mpl()
    from matplotlib.colors import PowerNorm

    cm = np.asarray(cm, dtype=np.int64)
    K = cm.shape[0]
    if cm.shape != (K, K) or len(classes) != K:
        raise ValueError(f"confusion matrix {cm.shape} does not match {len(classes)} class names")
    totals = cm.sum(axis=1, keepdims=True)
    share = 100.0 * cm / np.maximum(totals, 1)
    names = [_short(c) for c in classes]
    pairs = confused_pairs(cm, classes, top_pairs) if K > ANNOTATE_MAX else []
    side = min(max(4.0, 0.45 * K + 2.5), 11.0)
    width = side + (6.5 if pairs else 1.5)
    fig = new_figure(width, side + 1.0)
    if pairs:
        ax, axp = fig.subplots(1, 2, width_ratios=[side, 5.0])
    else:
        ax, axp = fig.subplots(), None
    # a square-root colour scale keeps the few-percent confusions of many-class matrices visible
    norm = PowerNorm(0.5, vmin=0, vmax=100) if K > ANNOTATE_MAX else None
    # beyond ~100 classes a cell is under 2 pixels: let Agg average cells instead of dropping them
    im = ax.imshow(share, cmap="Blues", vmin=None if norm else 0, vmax=None if norm else 100, norm=norm,
                   interpolation="nearest" if K <= 100 else "antialiased", aspect="equal")
    cbar = fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02)
    if norm is not None:
        cbar.set_ticks([0, 1, 5, 10, 25, 50, 75, 100])
    cbar.set_label("share of the true class (%)" + (", square-root scale" if norm is not None else ""))
    step = max(1, math.ceil(K / MAX_TICKS))
    ticks = list(range(0, K, step))
    fs = 10 if K <= 12 else 8 if K <= 30 else 7 if K <= 60 else 6
    ax.set_xticks(ticks, [names[i] for i in ticks], rotation=45 if K <= ANNOTATE_MAX else 90,
                  ha="right" if K <= ANNOTATE_MAX else "center", rotation_mode="anchor" if K <= ANNOTATE_MAX
                  else "default", fontsize=fs)
    ylabels = [f"{names[i]} (n={int(totals[i, 0])})" if K <= ANNOTATE_MAX else names[i] for i in ticks]
    ax.set_yticks(ticks, ylabels, fontsize=fs)
    every = f" (every {step}th class named)" if step > 1 else ""
    ax.set_xlabel("predicted class" + every)
    ax.set_ylabel("true class" + every)
    if K <= ANNOTATE_MAX:
        cell_fs = 9 if K <= 10 else 7
        for i in range(K):
            for j in range(K):
                if cm[i, j]:
                    dark = share[i, j] > 55
                    ax.text(j, i, f"{cm[i, j]}\n{share[i, j]:.0f}%", ha="center", va="center", fontsize=cell_fs,
                            color="white" if dark else "black")
    n = int(cm.sum())
    acc = 100.0 * np.trace(cm) / max(n, 1)
    ax.set_title(f"{title}\n{n} videos, {K} classes, top-1 {acc:.1f}%")
    if axp is not None:
        labels = [f"{_short(t)} → {_short(p)}" for t, p, _, _ in pairs][::-1]
        counts = [c for _, _, c, _ in pairs][::-1]
        bars = axp.barh(range(len(pairs)), counts, color="C3")
        axp.set_yticks(range(len(pairs)), labels, fontsize=8)
        axp.bar_label(bars, [f"{c} ({pct:.0f}%)" for _, _, c, pct in pairs[::-1]], fontsize=7, padding=2)
        axp.set_xlabel("videos (in brackets: % of the true class)")
        axp.set_title(f"Top {len(pairs)} confusions (true → predicted)")
        axp.set_ylabel("true class → predicted class")
        axp.margins(x=0.15)
        axp.grid(axis="x", alpha=0.3)
    return fig


def per_class_figure(per_class: dict[str, float | None], title: str = "Per-class accuracy", worst: int = 40):
    """Horizontal bars of per-class accuracy (%), worst first; beyond ``worst`` classes only the
    ``worst`` lowest are drawn and the title says so. Classes without test videos are left out."""
    scored = sorted(((v, k) for k, v in per_class.items() if v is not None), key=lambda t: (t[0], t[1]))
    if not scored:
        raise ValueError("no class has test videos")
    shown = scored[:worst]
    fig = new_figure(7.5, 0.25 * len(shown) + 1.6)
    ax = fig.subplots()
    bars = ax.barh(range(len(shown)), [100 * v for v, _ in shown], color="C0")
    ax.bar_label(bars, [f"{100 * v:.0f}%" for v, _ in shown], fontsize=7, padding=2)
    ax.set_yticks(range(len(shown)), [_short(k, 30) for _, k in shown], fontsize=8)
    ax.invert_yaxis()
    ax.set_ylim(len(shown) - 0.5, -0.5)
    ax.set_xlim(0, 110)  # room for the 100% labels
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("accuracy (% of the class's videos)")
    ax.set_ylabel("class (worst first)")
    mean = 100 * sum(v for v, _ in scored) / len(scored)
    ax.axvline(mean, color="C1", ls="--", lw=1, zorder=0)
    ax.grid(axis="x", alpha=0.3)
    note = f": the {len(shown)} lowest of {len(scored)} classes" if len(shown) < len(scored) else ""
    ax.set_title(f"{title}{note}\n(dashed line: mean over classes, {mean:.1f}%)")
    return fig


def write_confusion(cm, classes: Sequence[str], path: str | Path, title: str = "Confusion matrix") -> Path:
    return save(confusion_figure(cm, classes, title), path)
