"""End to end on generated moving-digit videos: pretrain -> finetune -> linprobe -> test, via the CLI."""

import json

import pytest

from maest.cli import main

QUIET = ["--set", "train.progress=false", "--set", "train.tensorboard=false"]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    pytest.importorskip("sklearn")
    from maest.data import corrupt_copy, write_moving_digits

    root = tmp_path_factory.mktemp("digits")
    paths = write_moving_digits(root, num_videos=12, num_frames=8, size=32, digit_scale=2,
                                digits=(0, 1), directions=("left", "right"))
    corrupt_copy(root / "videos" / "0000_0_left.mp4", root / "videos" / "broken.mp4")
    test_csv = root / "test.csv"
    test_csv.write_text(paths["val"].read_text() + "videos/broken.mp4 0\n")
    return {**paths, "test": test_csv}


def test_pretrain_finetune_test_pipeline(digits, tmp_path, capsys):
    run = ["--set", "train.max_steps=2", *QUIET, "--json"]
    out_pre = str(tmp_path / "pre")
    assert main(["pretrain", str(digits["train"]), "--preset", "tiny", "--output-dir", out_pre, *run]) == 0
    pre = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["checkpoint"]
    assert main(["finetune", str(digits["train"]), "--val", str(digits["val"]), "--init", pre, "--preset",
                 "tiny_finetune", "--output-dir", str(tmp_path / "ft"), *run]) == 0  # 4 classes: classes.txt
    ft = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ft["steps"] == 2 and len(ft["val"]) == 1
    assert main(["test", ft["checkpoint"], str(digits["test"]), "--clips", "2", "--crops", "3", "--num-workers", "0",
                 "--output-dir", str(tmp_path / "test")]) == 0
    out = capsys.readouterr().out
    assert "tested" in out and "on 3 videos" in out and "top-1" in out and "top-4" in out  # 4 classes: top-k named
    assert "1 video could not be decoded" in out and "broken.mp4" in out and "next:" in out
    res = json.loads((tmp_path / "test" / "results.json").read_text())
    assert res["videos"] == 3 and res["failed_videos"] == 1 and res["views_per_video"] == 6.0
    saved = json.loads((tmp_path / "test" / "results.json").read_text())
    assert saved["classes"] == ["0_left", "0_right", "1_left", "1_right"]
    assert (tmp_path / "test" / "confusion.png").stat().st_size > 0
    assert (tmp_path / "test" / "confusion.csv").read_text().startswith("true \\ predicted,0_left")

    assert main(["linprobe", str(digits["train"]), "--init", pre, "--preset", "tiny_linprobe", "--probe", "attentive",
                 "--output-dir", str(tmp_path / "lp"), *run]) == 0
    lp = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["test", lp["checkpoint"], str(digits["val"]), "--clips", "1", "--crops", "1", "--num-workers", "0",
                 "--output-dir", str(tmp_path / "lptest")]) == 0


def test_linprobe_needs_weights(digits, capsys):
    assert main(["linprobe", str(digits["train"]), "--preset", "tiny_linprobe"]) == 2
    assert "needs pre-trained weights" in capsys.readouterr().err


def test_test_rejects_a_pretraining_checkpoint(tmp_path, capsys):
    import torch

    from maest.runs import checkpoint as ckpt

    path = ckpt.atomic_save({"model": {"w": torch.zeros(1)}, "config": {"model": {}}}, tmp_path / "c.pt")
    assert main(["test", str(path), str(tmp_path)]) == 2
    assert "is a pre-training (MAE) checkpoint" in capsys.readouterr().err
