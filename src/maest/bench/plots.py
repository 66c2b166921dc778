"""Charts of the benchmarks' results with matplotlib (the optional ``plots`` extra): ``maest bench``
(s/step by mask ratio and precision) and ``maest bench-data`` (clips/s by backend and repeat). Built
on the shared figure helpers of :mod:`maest.figures.plots` (write one with its ``save``)."""

from __future__ import annotations

from typing import Any

from maest.figures.plots import new_figure


def _grouped_bars(ax, groups: list[str], series: dict[str, list[float | None]], fmt: str) -> None:
    """Bars of each series side by side within each group; missing values leave a gap."""
    width = 0.8 / max(len(series), 1)
    for k, (label, vals) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
        pts = [(x, v) for x, v in zip(xs, vals, strict=True) if v is not None]
        if not pts:
            continue
        bars = ax.bar([x for x, _ in pts], [v for _, v in pts], width, label=label, color=f"C{k % 10}")
        ax.bar_label(bars, [fmt.format(v) for _, v in pts], fontsize=7, padding=2)
    ax.set_xticks(range(len(groups)), groups)
    ax.margins(y=0.12)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.grid(axis="y", alpha=0.3)


def bench_figure(rows: list[dict[str, Any]], title: str = "maest bench: seconds per training step"):
    """``maest bench`` results: s/step by mask ratio (groups) and precision / mode (bars), one panel
    per model; decoder mask ratio and target name the bars too when the rows differ in them. Takes
    the table's rows or the ``--side-by-side`` results."""
    varies = {k for k in ("decoder_mask", "target") if len({r.get(k) for r in rows}) > 1}
    flat = []
    for r in rows:
        if isinstance(r.get("s_per_step"), dict):  # side by side: {mode: seconds}
            flat += [(r["model"], r["mask"], mode, s) for mode, s in r["s_per_step"].items()]
        else:
            label = "reference fp32" if r["mode"] == "reference" else f"maest {r['precision']}"
            label += " compiled" if r.get("compile") else ""
            label += f", decoder mask {r['decoder_mask']:g}" if "decoder_mask" in varies else ""
            label += f", {r['target']}" if "target" in varies else ""
            flat.append((r["model"], r.get("mask", r.get("mask_ratio")), label, r["s_per_step"]))
    if not flat:
        raise ValueError("no benchmark results to plot")
    models = list(dict.fromkeys(m for m, *_ in flat))
    fig = new_figure((4.0 + 1.6 * len({x[1] for x in flat})) * len(models), 4.2)
    axes = fig.subplots(1, len(models), squeeze=False).ravel()
    for ax, model in zip(axes, models, strict=True):
        mine = [x for x in flat if x[0] == model]
        masks = sorted(dict.fromkeys(x[1] for x in mine), reverse=True)
        labels = list(dict.fromkeys(x[2] for x in mine))
        found = {(x[1], x[2]): x[3] for x in mine}
        series = {lab: [found.get((mask, lab)) for mask in masks] for lab in labels}
        _grouped_bars(ax, [f"{m:g}" if m else "0 (none)" for m in masks], series, "{:.3g}")
        batch = next((r.get("batch") for r in rows if r.get("model") == model and r.get("batch")), None)
        ax.set_title(f"model {model}" + (f", {batch} clips per step" if batch else ""))
        ax.set_xlabel("mask ratio")
        ax.set_ylabel("seconds per training step (lower is better)")
    fig.suptitle(title)
    return fig


BENCH_DATA_SECTIONS = {"speedup": "loader before vs now, one core", "shards": "files vs shards"}


def bench_data_figure(rows: list[dict[str, Any]], title: str = "maest bench-data: loader throughput"):
    """``maest bench-data`` results: clips/s by backend or pipeline (bars) and by repeated sampling,
    workers and GOP where they vary (groups), one panel per section and resolution. Rows without a
    clips/s figure (the profile, e2e and stall sections) are left out."""
    rows = [r for r in rows if isinstance(r.get("clips_per_s"), (int, float)) and "repeat" in r]
    if not rows:
        raise ValueError("no loader clips/s results to plot")
    panels = list(dict.fromkeys((r.get("section", ""), r.get("size", "")) for r in rows))
    widths = []
    for sec, size in panels:
        mine = [r for r in rows if (r.get("section", ""), r.get("size", "")) == (sec, size)]
        widths.append(len({(r.get("gop"), r.get("workers"), r["repeat"]) for r in mine})
                      * len({r.get("backend") for r in mine}))
    fig = new_figure(max(7.0, 0.45 * max(widths) + 4.0), 3.8 * len(panels))
    axes = fig.subplots(len(panels), 1, squeeze=False).ravel()
    for ax, (sec, size) in zip(axes, panels, strict=True):
        mine = [r for r in rows if (r.get("section", ""), r.get("size", "")) == (sec, size)]
        varies = [k for k in ("gop", "workers") if len({r.get(k) for r in mine}) > 1]

        def group_name(g, varies=varies):
            gop, workers, repeat = g
            parts = [f"GOP {gop}"] if "gop" in varies else []
            parts += [f"{workers} worker{'s' if workers != 1 else ''}"] if "workers" in varies else []
            return "\n".join([*parts, f"repeat {repeat}"])

        groups = list(dict.fromkeys((r.get("gop"), r.get("workers"), r["repeat"]) for r in mine))
        found = {(r.get("gop"), r.get("workers"), r["repeat"], r.get("backend")): r["clips_per_s"] for r in mine}
        series = {str(b): [found.get((*g, b)) for g in groups] for b in dict.fromkeys(r.get("backend") for r in mine)}
        _grouped_bars(ax, [group_name(g) for g in groups], series, "{:.1f}")
        head = BENCH_DATA_SECTIONS.get(sec, sec)
        ax.set_title(", ".join(x for x in (head, f"{size} H.264" if size else "") if x))
        ax.set_xlabel("repeated sampling (clips per decoded video)" + ("; " + " and ".join(
            "loader workers" if k == "workers" else "keyframe interval" for k in varies) if varies else ""))
        ax.set_ylabel("clips/s, wall clock (higher is better)")
    fig.suptitle(title)
    return fig
