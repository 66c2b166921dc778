"""maest reconstruct and maest extract on real videos, from a checkpoint written by maest pretrain."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from maest.cli import main


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("run")
    assert main(["pretrain", str(digits["train"]), "--preset", "tiny", "--output-dir", str(out),
                 "--set", "train.max_steps=1", "--set", "data.num_workers=0", "--set", "train.tensorboard=false",
                 "--set", "train.progress=false"]) == 0
    return out / "checkpoint-00000001.pt"


def test_reconstruct_writes_png_gif_mp4(pretrained, digits, tmp_path, capsys):
    video = sorted((digits["root"] / "videos").glob("*.mp4"))[0]
    capsys.readouterr()
    assert main(["reconstruct", str(video), "--checkpoint", str(pretrained), "--mask-ratio", "0.5",
                 "--out", str(tmp_path / "r"), "--scale", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["mask_ratio"] == 0.5 and out["mode"] == "honest"
    w, h = Image.open(out["png"]).size  # 2 target frames x 4 rows, named, under a title
    assert w > 2 * 32 + 2 + 40 and h > 4 * 32 + 3 * 2 + 10
    assert Image.open(out["gif"]).n_frames == 2
    from maest.data import open_video

    assert open_video(out["mp4"]).num_frames == 2
    # a second call would replace the figures: refused before any work unless --force
    again = ["reconstruct", str(video), "--checkpoint", str(pretrained), "--out", str(tmp_path / "r"), "--scale", "1"]
    assert main(again) == 2 and "r.png already exists; pass --force" in capsys.readouterr().err
    assert main([*again, "--force"]) == 0


def test_reconstruct_rejects_a_bad_checkpoint(tmp_path, digits, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    video = sorted((digits["root"] / "videos").glob("*.mp4"))[0]
    assert main(["reconstruct", str(video), "--checkpoint", str(bad)]) == 2
    assert "could not be read" in capsys.readouterr().err


@pytest.mark.parametrize("average", [False, True])
def test_extract_features_and_reports_broken_videos(pretrained, corrupt_corpus, tmp_path, capsys, average):
    csv_path, bad = corrupt_corpus
    args = ["extract", str(csv_path), "--checkpoint", str(pretrained), "--clips", "2", "--out", str(tmp_path)]
    capsys.readouterr()
    assert main(args + (["--average"] if average else []) + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    feats = np.load(out["features"])
    n = 8 if average else 16  # 8 readable videos x 2 clips
    assert feats.shape == (n, 32) and np.isfinite(feats).all()
    rows = list(csv.DictReader(open(out["index"])))
    assert len(rows) == n and {r["path"] for r in rows}.isdisjoint(bad)
    assert out["failed_videos"] == 2
    failed = (tmp_path / "failed.txt").read_text()
    assert all(p in failed for p in bad)
