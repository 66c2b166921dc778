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
    _run(sweep, monkeypatch, "pretrain", *root, "--epochs", "1", "--batch-size", "7", "--tag", "t")
    ckpt = str(tmp_path / "t_ep1.pt")
    _run(sweep, monkeypatch, "finetune", *root, "--init", ckpt, "--epochs", "1", "--labelled", "14")
    _run(sweep, monkeypatch, "probe", *root, "--init", ckpt, "--labelled-counts", "18")
    _run(sweep, monkeypatch, "stats", *root, "--init", ckpt)
    out = capsys.readouterr().out
    assert "train (21, 16, 3, 48, 48)" in out and "val (3, 16, 3, 48, 48)" in out and "epoch 1: loss" in out
    assert "held-out top-1 every 5 epochs [" in out and "linear probe on 18 labelled videos" in out
    assert out.count("attention entropy") == 2
