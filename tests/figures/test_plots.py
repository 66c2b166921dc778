"""matplotlib figures: each is written as a PNG of the expected size, the confusion matrix stays
legible at 400 classes, the curves come out of a real run, the benchmark commands take --plot, and
wandb logs the same metrics as metrics.jsonl (offline, only where wandb is installed)."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("matplotlib")

from maest.bench import plots as bench_plots
from maest.figures import plots
from maest.runs.metrics import MetricsLogger, read_metrics


def _records(steps=30, val=True, resumed=False):
    recs = []
    for s in range(1, steps + 1):
        recs.append({"step": s, "time": 1000.0 + s, "loss": 1.0 / s + 0.1, "lr": 1e-3 * min(1, s / 5),
                     "epoch": s / 6, "clips_per_s": 10.0 + s % 3, "grad_norm": 0.5})
        if s % 6 == 0:
            recs.append({"step": s, "time": 1000.0 + s, "skipped_videos": 1 if s == 12 else 0, "epoch_end": s // 6 - 1})
            if val:
                recs.append({"step": s, "time": 1000.0 + s, "epoch": s // 6, "val_top1": 10.0 * s / 6,
                             "val_top5": 50.0 + s, "val_failed": 0})
    if resumed:  # a resumed run writes steps 10..12 again
        recs += [dict(r, loss=r["loss"] + 5) for r in recs if "loss" in r and 10 <= r["step"] <= 12]
    return recs


def _png_size(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_curves_figure_panels_and_size(tmp_path):
    fig = plots.curves_figure({"run": _records()})
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["Training loss", "Learning rate", "Gradient norm", "Throughput", "Validation accuracy"]
    for ax in fig.axes:
        if ax.get_visible():
            assert ax.get_xlabel() and ax.get_ylabel()
    assert _png_size(plots.save(fig, tmp_path / "c.png")) == (1200, 1060)
    # pre-training records: no validation panel, and no grad norm when clipping is off
    recs = [{k: v for k, v in r.items() if k != "grad_norm"} for r in _records(val=False)]
    fig = plots.curves_figure({"run": recs})
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["Training loss", "Learning rate",
                                                                       "Throughput"]
    assert _png_size(plots.save(fig, tmp_path / "p.png")) == (1200, 720)


def test_curves_overlay_several_runs_and_refuse_empty():
    fig = plots.curves_figure({"a": _records(), "b": _records(12)})
    loss = fig.axes[0]
    assert {t.get_text() for t in loss.get_legend().get_texts()} == {"a (smoothed)", "b (smoothed)"}
    with pytest.raises(ValueError, match="no training records"):
        plots.curves_figure({"a": [{"step": 6, "skipped_videos": 0}]})


def test_split_records_keeps_the_last_record_of_a_repeated_step():
    parts = plots.split_records(_records(resumed=True))
    steps = [r["step"] for r in parts["train"]]
    assert steps == sorted(set(steps)) and len(steps) == 30
    assert parts["train"][10]["loss"] > 5  # step 11's record written after the resume
    assert len(parts["val"]) == 5 and len(parts["epoch"]) == 5


def test_smooth_is_debiased_and_follows_a_constant():
    assert plots.smooth([2.0] * 50) == pytest.approx([2.0] * 50)
    s = plots.smooth([0.0, 10.0, 0.0, 10.0] * 10)
    assert max(s[10:]) - min(s[10:]) < 10  # smoothed


def test_confusion_small_annotates_cells_and_names_every_class(tmp_path):
    cm = np.array([[5, 1, 0], [0, 3, 3], [2, 0, 4]])
    classes = ["0_left", "0_right", "a rather long class name indeed"]
    fig = plots.confusion_figure(cm, classes)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    xt = [t.get_text() for t in ax.get_xticklabels()]
    assert xt[:2] == ["0_left", "0_right"] and xt[2].endswith("…")  # long names shortened, not wrapped
    assert all(t.get_rotation() == 45 for t in ax.get_xticklabels())
    assert [t.get_text() for t in ax.get_yticklabels()][1] == "0_right (n=6)"
    texts = {t.get_text() for t in ax.texts}
    assert "3\n50%" in texts and "5\n83%" in texts and "0\n0%" not in texts  # empty cells stay blank
    assert any("share of the true class" in a.get_ylabel() for a in fig.axes[1:])  # the colour bar
    assert "top-1 66.7%" in ax.get_title()
    w, h = _png_size(plots.save(fig, tmp_path / "cm.png"))
    assert (w, h) == (550, 500)


def test_confusion_400_classes_names_every_kth_and_lists_top_pairs(tmp_path):
    K = 400
    rng = np.random.default_rng(0)
    labels = rng.integers(0, K, 8000)
    pred = np.where(rng.random(8000) < 0.7, labels, (labels + 1) % K)
    cm = np.zeros((K, K), int)
    np.add.at(cm, (labels, pred), 1)
    classes = [f"class number {i}" for i in range(K)]
    fig = plots.confusion_figure(cm, classes)
    ax, axp = fig.axes[0], fig.axes[1]
    assert len(ax.get_xticklabels()) == 50 and ax.get_xticklabels()[1].get_text() == "class number 8"
    assert "every 8th class" in ax.get_xlabel()
    assert not ax.texts  # no per-cell numbers at this size
    assert axp.get_title() == "Top 20 confusions (true → predicted)"
    pairs = plots.confused_pairs(cm, classes, 20)
    assert all(p == f"class number {(int(t.split()[-1]) + 1) % K}" for t, p, _, _ in pairs)
    assert _png_size(plots.save(fig, tmp_path / "cm400.png")) == (1750, 1200)


def test_confusion_rejects_mismatched_names():
    with pytest.raises(ValueError, match="does not match 2 class names"):
        plots.confusion_figure(np.eye(3, dtype=int), ["a", "b"])


def test_evaluate_confusion_png_is_the_matplotlib_figure(tmp_path):
    from maest.eval.test import write_confusion_png

    path = write_confusion_png(torch.tensor([[3, 1], [0, 4]]), ["left", "right"], tmp_path / "confusion.png")
    assert _png_size(path) == (550, 500)


def test_per_class_figure_worst_first(tmp_path):
    per = {f"c{i}": i / 100 for i in range(100)} | {"empty": None}
    fig = plots.per_class_figure(per, worst=40)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == ["c0", "c1"]
    assert "40 lowest of 100" in ax.get_title()
    assert _png_size(plots.save(fig, tmp_path / "pc.png")) == (750, 1160)
    with pytest.raises(ValueError):
        plots.per_class_figure({"a": None})


def _bench_rows():
    return [{"model": m, "mode": mode, "mask": mk, "precision": p, "compile": False, "s_per_step": t}
            for m in ("tiny", "base") for mk in (0.9, 0.0)
            for mode, p, t in (("reference", "fp32", 3.0), ("maest", "fp32", 1.5), ("maest", "bf16", 1.0))]


def test_bench_figures(tmp_path):
    fig = bench_plots.bench_figure(_bench_rows())
    assert [ax.get_title() for ax in fig.axes] == ["model tiny", "model base"]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["reference fp32", "maest fp32",
                                                                            "maest bf16"]
    assert _png_size(plots.save(fig, tmp_path / "b.png")) == (1440, 420)
    dual = [dict(r, decoder_mask=dm) for r in _bench_rows() for dm in (0.0, 0.5)]
    labels = [t.get_text() for t in bench_plots.bench_figure(dual).axes[0].get_legend().get_texts()]
    assert len(labels) == 6 and "maest bf16, decoder mask 0.5" in labels
    side = [{"model": "base", "mask": 0.9, "s_per_step": {"reference": 12.0, "maest-bf16": 3.6}}]
    assert _png_size(plots.save(bench_plots.bench_figure(side), tmp_path / "s.png")) == (560, 420)
    rows = [{"section": "speedup", "size": "340x256", "gop": 30, "backend": b, "workers": 0, "repeat": r,
             "clips_per_s": 1.0 + r} for b in ("before pyav", "now pyav") for r in (1, 2, 4)]
    rows += [{"section": "shards", "size": "340x256", "gop": 30, "backend": b, "workers": w, "repeat": r,
              "clips_per_s": 2.0 + w} for b in ("files (auto)", "shards (auto)") for w in (0, 2) for r in (1, 4)]
    rows += [{"section": "profile", "size": "340x256", "repeat": 4, "total_ms_per_clip": 5.0}]
    fig = bench_plots.bench_data_figure(rows)
    assert [ax.get_title() for ax in fig.axes] == ["loader before vs now, one core, 340x256 H.264",
                                                  "files vs shards, 340x256 H.264"]
    assert fig.axes[0].get_ylabel() == "clips/s, wall clock (higher is better)"
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()][:2] == ["0 workers\nrepeat 1", "0 workers\nrepeat 4"]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["before pyav", "now pyav"]
    assert _png_size(plots.save(fig, tmp_path / "d.png")) == (760, 760)
    with pytest.raises(ValueError, match="no loader clips/s"):
        bench_plots.bench_data_figure(rows[-1:])


def test_bench_data_command_writes_the_plot(tmp_path, monkeypatch):
    from maest.bench import data as bench_data
    from maest.cli import main

    rows = [{"section": "speedup", "size": "340x256", "gop": 30, "backend": "now pyav", "workers": 0, "repeat": r,
             "clips_per_s": 3.0 * r} for r in (1, 4)]
    seen = {}

    def fake_run(args):
        seen["args"] = args
        return rows

    monkeypatch.setattr(bench_data, "run_args", fake_run)
    out = tmp_path / "bd.png"
    assert main(["bench-data", "--plot", str(out), "--quick"]) == 0
    assert seen["args"].quick and _png_size(out)[0] > 500
    out2 = tmp_path / "bd2.png"  # the older spelling, options after "--", works too
    assert main(["bench-data", "--", "--quick", "--plot", str(out2)]) == 0
    assert seen["args"].quick and out2.is_file()


def test_bench_command_writes_the_plot(tmp_path, monkeypatch):
    from maest.bench import step as bench
    from maest.cli import main

    seen = {}
    monkeypatch.setattr(bench, "run_args", lambda args: seen.setdefault("models", args.models) and _bench_rows())
    out = tmp_path / "bench.png"
    assert main(["bench", "--plot", str(out), "--models", "tiny"]) == 0
    assert _png_size(out) == (1440, 420) and seen["models"] == ["tiny"]
    assert main(["bench", "--plot", str(out), "--", "--models", "tiny"]) == 0  # the older spelling


def test_missing_matplotlib_is_one_clear_line(monkeypatch, tmp_path, caplog):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert not plots.available()
    with pytest.raises(RuntimeError, match=r"pip install 'maest\[plots\]'"):
        plots.curves_figure({"a": _records()})
    # the end of a training run only warns
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in _records()) + "\n")
    with caplog.at_level("WARNING", logger="maest"):
        assert plots.write_run_curves(tmp_path) is None
    assert "maest[plots]" in caplog.text and not (tmp_path / "curves.png").exists()
    # maest test writes its numbers and skips the figure
    from maest.eval.test import write_report

    res = {"confusion": [[1, 0], [0, 1]], "classes": ["a", "b"], "top1": 100.0}
    paths = write_report(res, tmp_path / "test")
    assert "png" not in paths and paths["csv"].is_file() and not (tmp_path / "test" / "confusion.png").exists()


def test_a_training_run_ends_with_its_curves(tmp_path):
    from maest.overrides import apply_overrides
    from maest.train.pretrain import run
    from maest.train.recipes import get_preset

    from ..conftest import RandomClips

    cfg = apply_overrides(get_preset("tiny"), [
        f"train.output_dir={tmp_path}", "train.tensorboard=false", "train.progress=false", "train.log_every=1",
        "train.epochs=2", "train.batch_size=2", "data.num_workers=0"])
    run(cfg, dataset=RandomClips(n=4, repeat=2))
    recs = read_metrics(tmp_path / "metrics.jsonl")
    assert sum("loss" in r for r in recs) == 4
    w, h = _png_size(tmp_path / "curves.png")
    assert w == 1200 and h in (720, 1060)


def test_wandb_missing_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(RuntimeError, match="train.wandb=true needs the wandb package: pip install wandb"):
        MetricsLogger(tmp_path, tensorboard=False, wandb=True)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_wandb_offline_logs_the_same_metrics(monkeypatch, tmp_path):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = MetricsLogger(tmp_path, tensorboard=False, wandb=True, config={"train": {"epochs": 1}})
    run = logger._wandb
    assert run.config["train"] == {"epochs": 1}
    calls, real_log = [], run.log
    monkeypatch.setattr(run, "log", lambda data, step: (calls.append((dict(data), step)), real_log(data, step=step)))
    logger.log(1, loss=1.5, lr=1e-3, note="text")
    logger.log(2, loss=1.25, lr=1e-3)
    logger.close()
    assert calls == [({"loss": 1.5, "lr": 1e-3}, 1), ({"loss": 1.25, "lr": 1e-3}, 2)]  # numbers only, same names
    files = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    # history items are stored as key + JSON value strings; wandb's service may still be flushing the file
    for _ in range(100):
        data = files[0].read_bytes()
        if b"1.25" in data:
            break
        time.sleep(0.2)
    assert b"loss" in data and b"1.25" in data and b"note" not in data
    assert [r["loss"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1.5, 1.25]


def test_every_figure_has_a_title_and_axis_labels():
    figs = [plots.curves_figure({"r": _records()}), plots.confusion_figure(np.eye(4, dtype=int) * 3, list("abcd")),
            plots.per_class_figure({"a": 0.5, "b": 1.0}), bench_plots.bench_figure(_bench_rows()),
            bench_plots.bench_data_figure([{"size": "340x256", "gop": 30, "backend": "pyav", "workers": 0, "repeat": 1,
                                      "clips_per_s": 2.0}])]
    for fig in figs:
        for ax in fig.axes:
            if not ax.get_visible() or ax.get_label() == "<colorbar>":
                continue
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), (ax.get_title(), fig)
