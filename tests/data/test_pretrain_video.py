"""End to end on real decoded video: the CLI pre-trains through broken files and the demo runs."""

import json
import logging

from PIL import Image

from maest.cli import main
from maest.runs.metrics import read_metrics


def test_pretrain_cli_on_videos_with_broken_files(corrupt_corpus, tmp_path, capsys):
    csv, bad = corrupt_corpus
    out = tmp_path / "run"
    args = ["pretrain", str(csv), "--preset", "tiny", "--output-dir", str(out), "--set", "train.epochs=2",
            "--set", "data.num_workers=0", "--set", "train.tensorboard=false", "--set", "train.progress=false"]
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 10 and summary["loss"] > 0  # 10 videos / batch 2 x 2 epochs
    assert set(summary["skipped"]) == set(bad)
    records = read_metrics(out / "metrics.jsonl")
    per_epoch = [r["skipped_videos"] for r in records if "skipped_videos" in r]
    assert len(per_epoch) == 2 and all(n >= 2 for n in per_epoch)
    assert (out / "tb").is_dir() is False and (out / "checkpoint-00000010.pt").is_file()


def test_demo_quick_writes_reconstructions(tmp_path, capsys, caplog):
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "[3/3] reconstructions" in out
    # issue 22: its steps, the loss and where the figures are; no INFO log between them, no raw JSON
    assert not [r for r in caplog.records if r.name.startswith("maest") and r.levelno < logging.WARNING]
    assert "{" not in out and "demo finished in" in out and "maest report" in out
    w, h = Image.open(tmp_path / "demo" / "reconstruction.png").size
    assert w > 3 * (4 * 64 + 3 * 2) and h > 3 * (4 * 64 + 3 * 2)  # 4 frames x 4 rows of 64 px, x3, labelled
    gif = Image.open(tmp_path / "demo" / "reconstruction.gif")
    assert gif.n_frames == 4
    assert (tmp_path / "demo" / "reconstruction_true_stats.png").is_file()
