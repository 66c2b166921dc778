"""The transfer-experiment scripts in benchmarks/ run end to end on a handful of videos."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import digits_sweep
    import digits_transfer

    threads = torch.get_num_threads()
    yield digits_transfer, digits_sweep
    torch.set_num_threads(threads)  # both scripts set their own thread count


def _run(module, monkeypatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", [module.__name__, *argv])
    module.main()


@pytest.mark.slow
def test_digits_transfer_runs_and_reuses_pretraining(scripts, monkeypatch, tmp_path, capsys):
    transfer, _ = scripts
    args = ["--out", str(tmp_path), "--videos", "30", "--labelled", "10", "--pretrain-epochs", "1",
            "--finetune-epochs", "1", "--clips", "1", "--crops", "1", "--finetune-blr", "0.05"]
    _run(transfer, monkeypatch, *args)
    first = json.loads((tmp_path / "results.json").read_text())
    assert first["args"]["background"] == "plain" and first["args"]["pretrain_blr"] == 1e-2
    assert (tmp_path / "data" / "train_labelled.csv").read_text().count("\n") == 10
    run = first["runs"][0]
    assert set(run) >= {"mae", "scratch", "pretrain_loss"} and len(run["mae"]["val_top1_per_epoch"]) == 1
    # a second call finds the finished pre-training and reports its logged loss instead of training again
    metrics = tmp_path / "s0" / "pretrain" / "metrics.jsonl"
    logged = metrics.read_text()
    _run(transfer, monkeypatch, *args)
    assert metrics.read_text() == logged
    second = json.loads((tmp_path / "results.json").read_text())
    assert second["runs"][0]["pretrain_loss"] == pytest.approx(run["pretrain_loss"])
    assert "test top-1" in capsys.readouterr().out


@pytest.mark.slow
def test_digits_sweep_subcommands(scripts, monkeypatch, tmp_path, capsys):
    _, sweep = scripts
    root = ["--root", str(tmp_path)]
    _run(sweep, monkeypatch, "data", *root, "--videos", "24")
    assert (tmp_path / "train.decoded.pt").exists()
    _run(sweep, monkeypatch, "pretrain", *root, "--epochs", "1", "--batch-size", "7", "--tag", "t0")
    # a second pre-training continues from the first one's weights
    _run(sweep, monkeypatch, "pretrain", *root, "--epochs", "1", "--batch-size", "7", "--tag", "t",
         "--init", str(tmp_path / "t0_ep1.pt"))
    ckpt = str(tmp_path / "t_ep1.pt")
    _run(sweep, monkeypatch, "finetune", *root, "--init", ckpt, "--epochs", "1", "--labelled", "14",
         "--head-lr-scale", "10")
    _run(sweep, monkeypatch, "probe", *root, "--init", ckpt, "--labelled-counts", "18")
    _run(sweep, monkeypatch, "stats", *root, "--init", ckpt)
    out = capsys.readouterr().out
    assert "train (21, 16, 3, 48, 48)" in out and "val (3, 16, 3, 48, 48)" in out and "epoch 1: loss" in out
    assert "held-out top-1 every 5 epochs [" in out and "linear probe on 18 labelled videos" in out
    assert out.count("attention entropy") == 2


@pytest.mark.slow
def test_digits_transfer_fine_tunes_given_pretrained_weights(scripts, monkeypatch, tmp_path):
    transfer, sweep = scripts
    _run(sweep, monkeypatch, "data", "--root", str(tmp_path / "sweep"), "--videos", "24")
    _run(sweep, monkeypatch, "pretrain", "--root", str(tmp_path / "sweep"), "--epochs", "1", "--batch-size", "7")
    out = tmp_path / "transfer"
    _run(transfer, monkeypatch, "--out", str(out), "--videos", "24", "--labelled", "8", "--finetune-epochs", "1",
         "--clips", "1", "--crops", "1", "--pretrained", str(tmp_path / "sweep" / "mae_ep1.pt"),
         "--finetune-head-lr-scale", "10")
    run = json.loads((out / "results.json").read_text())["runs"][0]
    assert run["pretrain_loss"] is None and not (out / "s0" / "pretrain").exists()  # no pre-training ran
    assert {"mae", "scratch"} <= set(run)
    cfg = json.loads((out / "s0" / "mae" / "config.json").read_text())
    assert cfg["optim"]["head_lr_scale"] == 10 and cfg["init"].endswith("mae_ep1.pt")
