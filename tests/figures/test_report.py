"""``maest report``: one self-contained HTML page that parses, holds every section, embeds its figures
(no external URL), works on runs in progress and says what is missing, overlays compared runs, and
shows a real reconstruction for a pre-training run with a checkpoint."""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("matplotlib")

from maest.cli import main  # noqa: E402
from maest.figures import report


class Page(HTMLParser):
    """Collects section ids, images, links and text; fails on unbalanced tags."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections, self.images, self.urls, self.stack, self.text = [], [], [], [], []
        self.feed(text)
        self.close()
        assert not self.stack, f"unclosed tags: {self.stack}"

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id"))
        if tag == "img":
            self.images.append(a)
        for key in ("src", "href", "action", "data"):
            if a.get(key):
                self.urls.append(a[key])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(self.text)


def _check_page(html_text: str) -> Page:
    page = Page(html_text)
    assert page.sections == list(report.SECTIONS)
    for url in page.urls:  # only in-page anchors and embedded images
        assert url.startswith(("#", "data:image/png;base64,")), url
    assert "http://" not in html_text and "https://" not in html_text
    for img in page.images:
        png = base64.b64decode(img["src"].split(",", 1)[1])
        assert Image.open(io.BytesIO(png)).format == "PNG" and img.get("alt")
    return page


def _finetune_run(root: Path, steps: int = 18, planned_epochs: int = 10, test: bool = True) -> Path:
    run = root / "ft"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({
        "model": {"name": "vit_tiny_test", "probe": "none"}, "mix": {"mixup": 0.0},
        "data": {"source": "train.csv", "val_source": "val.csv"}, "train": {"epochs": planned_epochs}}))
    recs = []
    for s in range(1, steps + 1):
        recs.append({"step": s, "time": 1.0e9 + s, "loss": 2.0 / s, "lr": 1e-3, "epoch": s / 6,
                     "clips_per_s": 8.0, "grad_norm": 0.7})
        if s % 6 == 0:
            recs.append({"step": s, "time": 1.0e9 + s, "skipped_videos": 2 if s == 6 else 0, "epoch_end": s // 6 - 1})
            recs.append({"step": s, "time": 1.0e9 + s, "epoch": s // 6, "val_top1": 20.0 * s / 6, "val_top5": 90.0,
                         "val_failed": 1})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"step": 19, "lo')
    for s in (12, 18):
        (run / f"checkpoint-{s:08d}.pt").write_bytes(b"x" * 1000)
    if test:
        (run / "test").mkdir()
        (run / "test" / "results.json").write_text(json.dumps({
            "top1": 66.67, "top5": 100.0, "videos": 9, "failed_videos": 1, "failed": ["broken <b>.mp4"],
            "per_class": {"left": 1.0, "right": 0.5, "up": 0.5}, "confusion": [[3, 0, 0], [1, 2, 1], [0, 2, 2]],
            "classes": ["left", "right", "up"], "checkpoint": str(run / "checkpoint-00000018.pt"), "data": "t.csv",
            "clips": 2, "crops": 3}))
    return run


def test_finetune_run_in_progress_has_every_section(tmp_path):
    run = _finetune_run(tmp_path)
    out = report.write_report(run)
    assert out == run / "report.html"
    page = _check_page(out.read_text())
    text = page.all_text
    assert "in progress or stopped: step 18 of 60 (30%)" in text
    assert "1 unreadable line(s) in metrics.jsonl" in text
    assert "latest val top-1 / top-5" in text and "60.00% / 90.00% (epoch 3)" in text
    assert "test top-1 / top-5 (test/results.json)" in text and "66.67% / 100.00%" in text
    assert "Training: 2 unreadable video read(s) over 3 epoch(s)" in text
    assert "broken <b>.mp4" in text  # escaped, shown as text
    assert "checkpoint-00000018.pt" in text and '"val_source": "val.csv"' in text
    assert "no decoder to reconstruct" in text
    # curves, confusion matrix, per-class accuracy
    assert [i["alt"] for i in page.images] == ["training curves", "confusion matrix", "per-class accuracy"]


def test_finished_run_without_test_says_how_to_make_one(tmp_path):
    run = _finetune_run(tmp_path, steps=12, planned_epochs=2, test=False)
    page = _check_page(report.build_html(run))
    text = page.all_text
    assert "in progress" not in text and "finished at step 12 of 12" in text
    assert "final val top-1 / top-5" in text
    assert f"no test results: run `maest test {run}/checkpoint-....pt DATA`" in text
    assert "No test results in this run folder" in text


def test_run_that_just_started(tmp_path):
    run = tmp_path / "new"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": {"name": "tiny"}, "data": {"source": "x"},
                                                 "train": {"epochs": 1}}))
    page = _check_page(report.build_html(run))
    text = page.all_text
    assert "metrics.jsonl: no curves or metrics yet" in text and "no checkpoint-*.pt yet" in text
    assert "No training records yet" in text and not page.images


def test_compare_overlays_runs(tmp_path):
    a = _finetune_run(tmp_path / "a")
    b = _finetune_run(tmp_path / "b", steps=6)
    page = _check_page(report.build_html(a, compare=[b]))
    text = page.all_text
    assert f"compared with {b}" in text.replace("\n", " ")
    assert page.images[0]["alt"] == "training curves"
    # the metrics table has one column per run (both are named "ft": full paths tell them apart)
    assert "steps 18 of 60 6 of 60" in " ".join(text.split())


def test_refuses_to_overwrite_and_a_folder_that_is_not_a_run(tmp_path, capsys):
    run = _finetune_run(tmp_path, test=False)
    assert main(["report", str(run)]) == 0
    assert main(["report", str(run)]) == 2
    assert "report.html exists; pass --force" in capsys.readouterr().err
    assert main(["report", str(run), "--force", "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").is_file()
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "holds no config.json, metrics.jsonl or checkpoint-*.pt" in err and len(err.strip().splitlines()) == 1
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_pretraining_run_shows_a_real_reconstruction(tmp_path):
    from maest.data import write_moving_digits

    data = write_moving_digits(tmp_path / "data", num_videos=4, num_frames=16, size=32,
                               val_fraction=0.0, digit_scale=2)
    run = tmp_path / "run"
    assert main(["pretrain", str(data["train"]), "--preset", "tiny", "--output-dir", str(run),
                 "--set", "train.epochs=1", "--set", "train.batch_size=2", "--set", "data.repeat_aug=1",
                 "--set", "data.num_workers=0", "--set", "train.tensorboard=false",
                 "--set", "train.progress=false", "--set", "train.log_every=1"]) == 0
    assert (run / "curves.png").is_file()  # written at the end of the run
    page = _check_page(report.build_html(run))
    assert [i["alt"] for i in page.images] == ["training curves", "reconstruction"]
    png = base64.b64decode(page.images[1]["src"].split(",", 1)[1])
    w, h = Image.open(io.BytesIO(png)).size
    assert w > 3 * 2 * 32 + 60 and h > 3 * 4 * 32 + 20  # 2 frames x 4 panels of 32 px at scale 3, plus labels
    text = page.all_text
    assert "Nothing: the run is complete" in text and "Not applicable: a pre-training run" in text
    # without a readable video the page says so instead of failing
    cfg = json.loads((run / "config.json").read_text())
    cfg["data"]["source"] = str(tmp_path / "moved.csv")
    (run / "config.json").write_text(json.dumps(cfg))
    assert "has no readable video here; pass --video PATH" in _check_page(report.build_html(run)).all_text


def _pretrain_run(root: Path) -> Path:
    run = root / "pre"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": {"name": "tiny"}, "data": {"source": "v.csv"},
                                                 "train": {"epochs": 1, "mask_ratio": 0.9}}))
    (run / "metrics.jsonl").write_text("")
    (run / "checkpoint-00000002.pt").write_bytes(b"x")
    return run


def test_reconstruction_section_names_rows_and_reports_failures(tmp_path, monkeypatch):
    import numpy as np

    run = _pretrain_run(tmp_path)
    monkeypatch.setattr(report, "first_video", lambda r: tmp_path / "clip.mp4")
    grid = np.full((3 * (4 * 66 - 2), 3 * (4 * 66 - 2), 3), 255, np.uint8)  # 4 rows x 4 frames of 64 px, x3
    monkeypatch.setattr(report, "reconstruction_grid", lambda ckpt, video, **kw: grid)
    page = _check_page(report.build_html(run))
    assert [i["alt"] for i in page.images] == ["reconstruction"]
    assert "no training record (loss) in metrics.jsonl yet" in page.all_text

    def boom(ckpt, video, **kw):
        raise RuntimeError("cannot decode")

    monkeypatch.setattr(report, "reconstruction_grid", boom)
    text = _check_page(report.build_html(run)).all_text
    assert "reconstruction failed for" in text and "RuntimeError: cannot decode" in text
