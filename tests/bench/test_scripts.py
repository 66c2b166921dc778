"""The transfer-experiment script in benchmarks/ runs end to end on a handful of videos, through the
package's own trainer (from files, or from memory with the same clips)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import digits_transfer

    threads = torch.get_num_threads()
    yield digits_transfer
    torch.set_num_threads(threads)  # the script sets its own thread count


def _run(module, monkeypatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", [module.__name__, *argv])
    module.main()


@pytest.mark.slow
def test_digits_transfer_runs_and_reuses_pretraining(scripts, monkeypatch, tmp_path, capsys):
    transfer = scripts
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
def test_digits_transfer_fine_tunes_given_pretrained_weights(scripts, monkeypatch, tmp_path):
    transfer = scripts
    shared = tmp_path / "shared"
    _run(transfer, monkeypatch, "--out", str(shared), "--videos", "24", "--labelled", "8", "--pretrain-epochs", "1",
         "--finetune-epochs", "1", "--clips", "1", "--crops", "1", "--shared-pretraining", "--in-memory",
         "--pretrain-batch-size", "7", "--pretrain-repeat", "1", "--seeds", "0", "1")
    pre = sorted((shared / "pretrain").glob("checkpoint-*.pt"))
    assert len(pre) == 1 and not (shared / "s0" / "pretrain").exists()  # pre-trained once for both seeds
    runs = json.loads((shared / "results.json").read_text())["runs"]
    assert [r["seed"] for r in runs] == [0, 1]
    assert all(json.loads((shared / f"s{s}" / "mae" / "config.json").read_text())["init"] == str(pre[0])
               for s in (0, 1))
    out = tmp_path / "transfer"
    _run(transfer, monkeypatch, "--out", str(out), "--videos", "24", "--labelled", "8", "--finetune-epochs", "1",
         "--clips", "1", "--crops", "1", "--pretrained", str(pre[0]), "--finetune-head-lr-scale", "10")
    run = json.loads((out / "results.json").read_text())["runs"][0]
    assert run["pretrain_loss"] is None and not (out / "s0" / "pretrain").exists()  # no pre-training ran
    assert {"mae", "scratch"} <= set(run)
    cfg = json.loads((out / "s0" / "mae" / "config.json").read_text())
    assert cfg["optim"]["head_lr_scale"] == 10 and cfg["init"] == str(pre[0])


@pytest.mark.slow
def test_paper_miniature_smoke_runs_every_stage_and_reuses_its_runs(monkeypatch, tmp_path, capsys):
    """The miniature's smoke budget: pre-training, the validation choice, fine-tuning both arms, probes
    and tests through the package, then a second call that only reads its cached runs."""
    monkeypatch.syspath_prepend(str(BENCH))
    import paper_miniature

    threads = torch.get_num_threads()
    runs = tmp_path / "runs"
    finished = lambda: [*runs.glob("*/done.json"), *runs.glob("*/result-*.json")]  # noqa: E731
    try:
        _run(paper_miniature, monkeypatch, "--out", str(tmp_path), "--budget", "smoke", "--threads", str(threads))
        res = json.loads((tmp_path / "results.json").read_text())
        h = res["headline"]
        assert set(h["recipe"]) == {"mae", "scratch"} and len(h["rows"]) == 1
        for arm in ("mae", "scratch", "probe_mae", "probe_random"):
            assert 0 <= h[f"{arm}_top1"]["mean"] <= 100
        names = sorted(p.name for p in runs.iterdir())
        assert any(r.startswith("pretrain-s0-") for r in names) and any(r.startswith("probe-s0-") for r in names)
        assert "| fine-tune top-1" in (tmp_path / "table.md").read_text()
        # each arm's seed-0 fine-tuning is trained once: validated, then tested
        tuned = [p for p in runs.glob("finetune-*") if (p / "trained.json").is_file()]
        assert len(tuned) == 2 and all({"result-val.json", "result-test.json"} <= {q.name for q in p.iterdir()}
                                       for p in tuned)
        stamps = {p: p.stat().st_mtime_ns for p in finished()}
        _run(paper_miniature, monkeypatch, "--out", str(tmp_path), "--budget", "smoke", "--threads", str(threads))
        assert {p: p.stat().st_mtime_ns for p in finished()} == stamps  # cached
        # an ablation row: MVD's feature distillation from the headline's pre-trained MAE, against pixels
        _run(paper_miniature, monkeypatch, "--out", str(tmp_path), "--budget", "smoke", "--threads", str(threads),
             "--rows", "distill")
        row = json.loads((tmp_path / "results.json").read_text())["ablations"]["distill"]
        assert set(row["cells"]) == {"pixels", "features"}
        students = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("pretrain-*/done.json")]
        assert sum(s["settings"].get("model.target.kind") == "features" for s in students) == 1
        # the pixel cells are the headline's cached runs; new: the student, its fine-tuning and its probe
        assert len(stamps) + 3 == len(finished())
        # --report starts nothing: a row not run says so
        done = len(finished())
        _run(paper_miniature, monkeypatch, "--out", str(tmp_path), "--budget", "smoke", "--threads", str(threads),
             "--rows", "decoder", "distill", "--report")
        rows = json.loads((tmp_path / "results.json").read_text())["ablations"]
        assert "not_run" in rows["decoder"]["cells"]["0.5"] and "not_run" not in rows["distill"]["cells"]["features"]
        assert len(finished()) == done
        assert "| 0.5 | not run yet | not run yet |" in (tmp_path / "table.md").read_text()
    finally:
        torch.set_num_threads(threads)


def test_paper_miniature_passes_its_budgets_settings_to_the_jobs(monkeypatch, tmp_path):
    """Pre-training travels as uint8 (exact for its clips); a budget with ``finetune_compile`` compiles its
    fine-tunings and probes and keys their cache by it, so eager runs of other budgets are never reused."""
    monkeypatch.syspath_prepend(str(BENCH))
    import paper_miniature as pm

    seen: list = []
    summary = {"checkpoint": "x.pt", "loss": 0.5}

    def job(cfg, dataset=None):
        seen.append(cfg)
        Path(cfg.train.output_dir).mkdir(parents=True, exist_ok=True)
        return summary

    monkeypatch.setattr(pm.pt, "run", job)
    monkeypatch.setattr(pm.ft, "run", job)
    monkeypatch.setattr(pm.ft, "probe", job)
    monkeypatch.setattr(pm.Miniature, "_clips", lambda self, cfg, mode: None)
    monkeypatch.setattr(pm, "run_test", lambda *a, **k: {"top1": 50.0, "top5": 90.0})
    b = dict(pm.BUDGETS["smoke"])
    dirs = {}
    for compiled in (False, True):
        m = pm.Miniature(tmp_path, dict(b, finetune_compile=compiled))
        m.finetune("init.pt", 0, (1e-2, 10.0, 0.75), "labelled", "val")
        m.finetune("init.pt", 0, pm.PROBE, "pool", "test", probe=True)
        dirs[compiled] = {p.name for p in (tmp_path / "runs").iterdir()} - set().union(*dirs.values())
    assert [c.train.compile for c in seen] == [False, False, True, True]
    assert len(dirs[False]) == len(dirs[True]) == 2  # separate cache entries
    m.pretrain(0)
    assert seen[-1].data.transfer == "uint8"
    assert pm.BUDGETS["headline"]["finetune_compile"] and not pm.BUDGETS["ablate"]["finetune_compile"]


def test_trainer_speed_refuses_an_old_path_that_is_not_a_checkout(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(BENCH))
    import trainer_speed

    with pytest.raises(SystemExit) as e:
        _run(trainer_speed, monkeypatch, "--old", str(tmp_path))
    assert e.value.code == 2 and "is not a maest checkout (no src/maest)" in capsys.readouterr().err


@pytest.mark.slow
def test_trainer_speed_times_both_trainers_and_the_bare_step(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(BENCH))
    import trainer_speed

    out = tmp_path / "speed.json"
    _run(trainer_speed, monkeypatch, "--old", str(BENCH.parent), "--rounds", "1", "--steps", "3", "--compile", "off",
         "--bare", "--json", str(out))
    res = json.loads(out.read_text())
    assert res["recipes"]["bare"] == res["recipes"]["new"] and res["recipes"]["old"]["batch"] == 16
    assert all(len(res[k]) == 1 and res[k][0] > 0 for k in ("old", "new", "bare"))
    assert res["bare_over_old"] == pytest.approx(res["bare_median"] / res["old_median"])
    assert res["trainer_over_bare"] == pytest.approx(res["new_median"] / res["bare_median"])
    assert "round 1: bare" in capsys.readouterr().out


def test_loading_floor_times_the_item_path_and_its_tensor_work(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(BENCH))
    import loading_floor

    threads = torch.get_num_threads()
    out = tmp_path / "floor.json"
    try:
        _run(loading_floor, monkeypatch, "--rounds", "2", "--batch", "4", "--videos", "12", "--threads", "1",
             "--json", str(out))
    finally:
        torch.set_num_threads(threads)
    res = json.loads(out.read_text())
    assert set(res["ms_per_batch"]) == {"item path", "kernels only"} and all(len(v) == 2 for v in res["ms"].values())
    assert "kernels only:" in capsys.readouterr().out


@pytest.mark.parametrize("script, argv", [
    ("trainer_speed", ["--old", str(BENCH.parent), "--rounds", "0"]),
    ("trainer_speed", ["--old", str(BENCH.parent), "--steps", "0"]),
    ("loading_floor", ["--batch", "0"]),
    ("loading_floor", ["--videos", "1"]),
])
def test_speed_scripts_refuse_counts_below_one_in_one_line(monkeypatch, capsys, script, argv):
    monkeypatch.syspath_prepend(str(BENCH))
    module = __import__(script)
    with pytest.raises(SystemExit) as e:
        _run(module, monkeypatch, *argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "must be >= 1" in err and "Traceback" not in err
