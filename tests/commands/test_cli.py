import json

import pytest

from maest.cli import main

from ..conftest import RandomClips


def test_models_lists_names_and_presets(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "mae_vit_base_patch16" in out and "vit_b_k400_pretrain" in out


def test_bad_override_is_one_clear_line(capsys, tmp_path):
    assert main(["pretrain", str(tmp_path), "--preset", "tiny", "--set", "model.mask.ratio=1.5"]) == 2
    err = capsys.readouterr().err
    assert "model.mask.ratio=1.5 must be strictly between 0 and 1" in err
    assert "Traceback" not in err


def test_missing_data_is_reported(capsys):
    assert main(["pretrain", "--preset", "tiny"]) == 2
    assert "no training data" in capsys.readouterr().err


def test_pretrain_command_runs(monkeypatch, capsys, tmp_path):
    import maest.train.pretrain as pre

    real = pre.run
    monkeypatch.setattr(pre, "run", lambda cfg: real(cfg, dataset=RandomClips()))
    args = ["pretrain", "unused", "--preset", "tiny", "--output-dir", str(tmp_path), "--set", "train.max_steps=2",
            "--set", "train.progress=false", "--set", "train.tensorboard=false", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 2 and summary["checkpoint"].endswith("checkpoint-00000002.pt")


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "maest" in capsys.readouterr().out


def test_benchmark_options_need_no_double_dash(monkeypatch):
    """``maest bench-data --quick`` and ``maest bench --models tiny`` reach the benchmark as given."""
    import maest.bench.data

    seen = {}
    monkeypatch.setattr(maest.bench.data, "run_args", lambda args: seen.setdefault("args", args) and [])
    assert main(["bench-data", "--quick", "--repeats", "2"]) == 0
    assert seen["args"].quick and seen["args"].repeats == [2]
    with pytest.raises(SystemExit):
        main(["models", "--bogus"])  # other commands still reject what they do not know
