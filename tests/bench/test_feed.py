"""``maest bench-data``'s "clips/s needed per GPU": a GPU's bf16 peak x MFU over the model's training FLOPs
per clip (maest bench's analytic counter), beside the loader's measured clips/s."""

from __future__ import annotations

import argparse

import pytest

from maest.bench import data as bench_data
from maest.bench.feed import GPU_BF16_PEAK, columns, feed, train_gflop_per_clip
from maest.bench.options import add_data_options


def test_vit_b_on_an_h100_at_40_percent_mfu_needs_about_1480_clips_per_second():
    need = feed()
    assert need.model == "mae_vit_base_patch16" and need.gpu == "H100" and need.mfu == 0.4
    assert need.gflop_per_clip == pytest.approx(266.86, abs=0.01)  # the 267 GFLOP forward + backward
    assert need.clips_per_s == pytest.approx(989e12 * 0.4 / 266.86e9, rel=1e-4)
    assert "clips/s needed per GPU: 1482 (mae_vit_base_patch16, 267 GFLOP" in need.describe()
    assert feed(gpu="A100", mfu=0.5).clips_per_s == pytest.approx(312e12 * 0.5 / 266.86e9, rel=1e-4)
    assert train_gflop_per_clip("mae_vit_large_patch16") > 1.5 * need.gflop_per_clip  # a bigger encoder, same decoder
    assert columns(need, need.clips_per_s / 4) == {"clips_per_s_needed_per_gpu": need.clips_per_s, "gpus_fed": 0.25}


def test_unknown_gpus_and_mfus_are_refused_in_one_line():
    with pytest.raises(ValueError, match="--gpu V100 is not one of H100"):
        feed(gpu="V100")
    with pytest.raises(ValueError, match=r"--mfu 1.5 must be in \(0, 1\]"):
        feed(mfu=1.5)


def test_the_loader_rows_carry_the_column(monkeypatch, capsys):
    p = argparse.ArgumentParser()
    add_data_options(p)
    args = p.parse_args(["--sections", "shards", "--quick", "--gpu", "A100", "--mfu", "0.5"])
    assert set(GPU_BF16_PEAK) >= {"H100", "A100"}
    monkeypatch.setattr(bench_data, "corpus_and_shards", lambda args, work, size: (["a.mp4"], 2, "s.tar"))
    monkeypatch.setattr(bench_data, "loader_rate", lambda ds, workers, items: (740.0, 100.0))
    monkeypatch.setattr(bench_data, "VideoClipDataset", lambda *a, **k: None)
    monkeypatch.setattr("maest.data.datasets.dataset_from_source", lambda *a, **k: None)
    rows = bench_data.run_args(args)
    need = feed(gpu="A100", mfu=0.5)
    assert rows and all(r["clips_per_s_needed_per_gpu"] == need.clips_per_s for r in rows)
    assert rows[0]["gpus_fed"] == pytest.approx(740 / need.clips_per_s)
    out = capsys.readouterr().out
    assert out.splitlines()[0] == need.describe() and f"(needed per GPU {need.clips_per_s:.0f})" in out
