"""Issue 13: no traceback, no silent loss. Run folders, one-line errors, logs and packaging."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from maest.cli import main
from maest.overrides import apply_overrides
from maest.runs import checkpoint as ckpt
from maest.runs.metrics import read_metrics
from maest.train.pretrain import run
from maest.train.recipes import get_preset

from .conftest import RandomClips

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["--set", "train.progress=false", "--set", "train.tensorboard=false"]


@pytest.fixture(autouse=True)
def _no_curves(monkeypatch):
    """These runs are about files and messages: skip the end-of-run matplotlib figure (seconds each)."""
    import maest.train.loop

    monkeypatch.setattr(maest.train.loop, "write_run_curves", lambda run_dir: None)


def _cfg(out, *extra):
    return apply_overrides(get_preset("tiny"), [f"train.output_dir={out}", "train.tensorboard=false",
                                                "train.progress=false", "train.log_every=1", *extra])


def _steps(out):
    return [r["step"] for r in read_metrics(Path(out) / "metrics.jsonl") if "loss" in r]


def _one_line_error(capsys, code, *needles):
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def fake_data(monkeypatch):
    """CLI training commands read RandomClips instead of videos."""
    import maest.train.finetune as ft
    import maest.train.pretrain as pre

    real_pre, real_ft = pre.run, ft.run
    monkeypatch.setattr(pre, "run", lambda cfg: real_pre(cfg, dataset=RandomClips()))
    monkeypatch.setattr(ft, "run", lambda cfg: real_ft(cfg, dataset=RandomClips()))


# -- 1. run folders --------------------------------------------------------------------------------------------
def test_new_run_into_a_folder_with_checkpoints_is_refused(tmp_path):
    first = run(_cfg(tmp_path, "train.max_steps=2"), dataset=RandomClips())
    before = {p.name: p.read_bytes() for p in tmp_path.glob("checkpoint-*.pt")}
    logged = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(ValueError, match="already holds") as e:
        run(_cfg(tmp_path, "train.max_steps=3", "train.seed=1"), dataset=RandomClips())
    for fix in ("--resume", "--output-dir", "--overwrite"):
        assert fix in str(e.value)
    # nothing of the earlier run was touched
    assert {p.name: p.read_bytes() for p in tmp_path.glob("checkpoint-*.pt")} == before
    assert (tmp_path / "metrics.jsonl").read_text() == logged
    assert first["checkpoint"].endswith("checkpoint-00000002.pt")


def test_overwrite_replaces_the_previous_run_and_the_summary_names_its_own_file(tmp_path):
    run(_cfg(tmp_path, "train.max_steps=4", "train.save_every_steps=1", "train.keep_checkpoints=0"),
        dataset=RandomClips())
    (tmp_path / "tb").mkdir()
    (tmp_path / "tb" / "events.out.tfevents.1.host").write_bytes(b"old")
    (tmp_path / "tb" / "notes.txt").write_text("mine")
    second = run(_cfg(tmp_path, "train.max_steps=2", "train.seed=1", "train.overwrite=true"), dataset=RandomClips())
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint-00000002.pt"]
    state = ckpt.load_checkpoint(second["checkpoint"])
    assert state["config"]["train"]["seed"] == 1  # written by the second run, not left from the first
    # --overwrite is not recorded: reusing this run's config.json never replaces a folder by itself
    assert not state["config"]["train"]["overwrite"]
    assert not json.loads((tmp_path / "config.json").read_text())["train"]["overwrite"]
    assert _steps(tmp_path) == [1, 2]  # metrics.jsonl holds only the new run
    assert not (tmp_path / "tb" / "events.out.tfevents.1.host").exists() and (tmp_path / "tb" / "notes.txt").exists()


def test_save_never_skips_an_existing_file(tmp_path, monkeypatch):
    """Even if a file with the checkpoint's name appears, the save replaces it (atomically)."""
    from maest.train import loop as trainer

    path = ckpt.checkpoint_path(tmp_path, 2)
    real = trainer.runtime.state_dicts

    def plant_then_gather(model, optimizer):  # runs inside save(), just before the file is written
        path.write_bytes(b"stale")
        return real(model, optimizer)

    monkeypatch.setattr(trainer.runtime, "state_dicts", plant_then_gather)
    summary = run(_cfg(tmp_path, "train.max_steps=2"), dataset=RandomClips())
    assert summary["checkpoint"] == str(path)
    assert ckpt.load_checkpoint(path)["step"] == 2


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_cli_refuses_a_used_run_folder_in_one_line(command, tmp_path, capsys, fake_data):
    preset = "tiny" if command == "pretrain" else "tiny_finetune"
    args = [command, "unused", "--preset", preset, "--output-dir", str(tmp_path), "--set", "train.max_steps=1",
            *QUIET]
    assert main(args) == 0
    _one_line_error(capsys, main(args), str(tmp_path), "--resume", "--output-dir", "--overwrite")
    assert main([*args, "--overwrite"]) == 0
    assert main([*args, "--resume"]) == 0


def test_cli_resume_of_a_finished_run_reports_no_checkpoint_of_its_own(tmp_path, capsys, fake_data):
    args = ["pretrain", "unused", "--preset", "tiny", "--output-dir", str(tmp_path), "--set", "train.max_steps=1",
            *QUIET]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 1 and summary["checkpoint"] is None


# -- 4. stale temporaries ----------------------------------------------------------------------------------------
def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    run(_cfg(tmp_path, "train.max_steps=1"), dataset=RandomClips())
    stale = [tmp_path / ".checkpoint-00000002.pt.k3j_9x0a.tmp", tmp_path / ".checkpoint-00000001.pt.abcdefgh.tmp"]
    keep = [tmp_path / "notes.tmp", tmp_path / ".checkpoint-00000002.pt.tmp", tmp_path / "checkpoint-00000009.tmp",
            tmp_path / ".model.pt.abcdefgh.tmp", tmp_path / ".checkpoint-x.pt.abcdefgh.tmp"]
    for p in stale + keep:
        p.write_bytes(b"x" * 10)
    run(_cfg(tmp_path, "train.max_steps=2", "train.resume=auto"), dataset=RandomClips())
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep)


def test_a_kill_during_a_save_leaves_a_temporary_the_next_start_removes(tmp_path):
    code = textwrap.dedent(f"""
        import os, time, torch
        from maest.runs import checkpoint as ckpt
        real = torch.save
        def slow(obj, f):
            real(obj, f); f.flush(); print("writing", flush=True); time.sleep(60)
        torch.save = slow
        ckpt.atomic_save({{"x": torch.zeros(1000)}}, ckpt.checkpoint_path({str(tmp_path)!r}, 3))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    orphans = list(tmp_path.glob(".checkpoint-*.tmp"))
    assert len(orphans) == 1 and not ckpt.list_checkpoints(tmp_path)
    run(_cfg(tmp_path, "train.max_steps=1", "train.resume=auto"), dataset=RandomClips())
    assert not list(tmp_path.glob("*.tmp"))
    assert orphans[0].name.startswith(".checkpoint-00000003.pt.")


# -- 5. metrics after a resume -------------------------------------------------------------------------------------
def test_resume_truncates_metrics_past_the_resumed_step(tmp_path):
    run(_cfg(tmp_path, "train.max_steps=4", "train.save_every_steps=2", "train.keep_checkpoints=0"),
        dataset=RandomClips())
    ckpt.checkpoint_path(tmp_path, 4).unlink()  # as if killed after logging step 4, before saving it
    run(_cfg(tmp_path, "train.max_steps=4", "train.resume=auto"), dataset=RandomClips())
    assert _steps(tmp_path) == [1, 2, 3, 4]


# -- file permissions -------------------------------------------------------------------------------------------
def test_checkpoints_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = ckpt.atomic_save({"x": torch.zeros(1)}, tmp_path / "c.pt")
        run(_cfg(tmp_path / "run", "train.max_steps=1"), dataset=RandomClips())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    saved = ckpt.list_checkpoints(tmp_path / "run")[0]
    assert stat.S_IMODE(saved.stat().st_mode) == stat.S_IMODE((tmp_path / "run" / "config.json").stat().st_mode)


# -- one-line errors -------------------------------------------------------------------------------------------------
def test_zero_byte_checkpoint_is_one_clear_error(tmp_path, capsys, fake_data):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ckpt.CheckpointError, match="empty.pt is empty"):
        ckpt.load_checkpoint(empty)
    data = tmp_path / "list.csv"
    data.write_text("a.mp4 0\n")
    commands = [
        ["test", str(empty), str(data), "--output-dir", str(tmp_path / "t")],
        ["extract", str(data), "--checkpoint", str(empty), "--out", str(tmp_path / "f")],
        ["reconstruct", "a.mp4", "--checkpoint", str(empty)],
        ["convert", str(empty), str(tmp_path / "o.pt"), "--from", "official", "--model", "mae_vit_tiny_test"],
        ["finetune", "unused", "--preset", "tiny_finetune", "--init", str(empty), "--output-dir", str(tmp_path / "ft"),
         *QUIET],
        ["pretrain", "unused", "--preset", "tiny", "--resume", str(empty), "--output-dir", str(tmp_path / "p"), *QUIET],
    ]
    for argv in commands:
        _one_line_error(capsys, main(argv), "empty.pt", "0 bytes")
    # auto-resume picks the newest checkpoint: a zero-byte one is named too
    run_dir = tmp_path / "auto"
    run_dir.mkdir()
    ckpt.checkpoint_path(run_dir, 5).write_bytes(b"")
    _one_line_error(capsys, main(["pretrain", "unused", "--preset", "tiny", "--resume", "--output-dir", str(run_dir),
                                  *QUIET]), "checkpoint-00000005.pt", "0 bytes")


def test_weights_only_checkpoint_given_to_resume(tmp_path, capsys, fake_data):
    weights = ckpt.atomic_save({"model": {"w": torch.zeros(1)}}, tmp_path / "weights.pt")
    line = _one_line_error(capsys, main(["pretrain", "unused", "--preset", "tiny", "--resume", str(weights),
                                         "--output-dir", str(tmp_path / "r"), *QUIET]), "weights.pt", "--init")
    assert "weights only" in line


@pytest.mark.parametrize("setting, needle", [
    ("train.log_every=0", "train.log_every=0"), ("train.max_steps=0", "train.max_steps=0"),
    ("train.keep_checkpoints=-1", "train.keep_checkpoints=-1"), ("model.encoder.depth=0", "model.encoder.depth=0"),
    ("train.save_every_steps=-2", "train.save_every_steps=-2"),
])
def test_bad_settings_are_refused(setting, needle, tmp_path, capsys):
    _one_line_error(capsys, main(["pretrain", "unused", "--preset", "tiny", "--output-dir", str(tmp_path),
                                  "--set", setting, *QUIET]), needle)


@pytest.mark.parametrize("setting", ["train.log_every=0", "train.max_steps=0", "train.keep_checkpoints=-1",
                                     "model.encoder.depth=0"])
def test_bad_finetune_settings_are_refused(setting, tmp_path, capsys):
    _one_line_error(capsys, main(["finetune", "unused", "--preset", "tiny_finetune", "--output-dir", str(tmp_path),
                                  "--set", setting, *QUIET]), setting)


def test_non_finite_loss_is_one_line_with_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    import maest.train.pretrain as pre

    class NaNLater(RandomClips):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            if self.poison:
                item["video"][:] = float("nan")
            return item

    data = NaNLater()
    data.poison = False
    real = pre.run
    monkeypatch.setattr(pre, "run", lambda cfg: real(cfg, dataset=data))
    args = ["pretrain", "unused", "--preset", "tiny", "--output-dir", str(tmp_path), *QUIET]
    assert main([*args, "--set", "train.max_steps=2", "--set", "train.save_every_steps=1"]) == 0
    data.poison = True
    line = _one_line_error(capsys, main([*args, "--resume", "--set", "train.max_steps=4"]), "loss is nan at step 2")
    # the newest checkpoint whose own loss was finite: step 1 (step 2's weights gave the NaN)
    assert "last good checkpoint: " + str(ckpt.checkpoint_path(tmp_path, 1)) in line


@pytest.mark.parametrize("command", ["pretrain", "finetune", "test", "extract", "convert", "reconstruct", "demo"])
@pytest.mark.parametrize("kind", ["file", "inside_file", "not_writable"])
def test_unusable_output_dir_is_one_line_before_any_work(command, kind, tmp_path, capsys, monkeypatch, fake_data):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    if kind == "file":
        out = blocker
    elif kind == "inside_file":
        out = blocker / "sub"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        out = locked / "sub"
        if os.geteuid() == 0:  # root writes anyway: make the write check fail as it does for a user
            import maest.runs.outputs

            def denied(folder):
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(maest.runs.outputs, "_probe_write", denied)

    def no_work(*a, **k):
        raise AssertionError("compute started before the output was checked")

    import maest.eval.features
    import maest.eval.test

    monkeypatch.setattr(maest.eval.test, "run_test", no_work)
    monkeypatch.setattr(maest.eval.features, "extract", no_work)
    monkeypatch.setattr(maest.eval.features, "load_encoder", no_work)
    src = tmp_path / "src.pt"
    ckpt.atomic_save({"model": {"w": torch.zeros(1)}}, src)
    argv = {
        "pretrain": ["pretrain", "unused", "--preset", "tiny", "--output-dir", str(out), *QUIET],
        "finetune": ["finetune", "unused", "--preset", "tiny_finetune", "--output-dir", str(out), *QUIET],
        "test": ["test", str(src), str(tmp_path), "--output-dir", str(out)],
        "extract": ["extract", str(tmp_path), "--checkpoint", str(src), "--out", str(out)],
        "convert": ["convert", str(src), str(out if kind == "file" else out / "x.pt"), "--from", "official",
                    "--model", "mae_vit_tiny_test", *(["--to", "hf"] if kind == "file" else [])],
        "reconstruct": ["reconstruct", "v.mp4", "--checkpoint", str(src), "--out",
                        str((blocker if kind == "file" else out) / "r")],
        "demo": ["demo", "--quick", "--out", str(out)],
    }[command]
    line = _one_line_error(capsys, main(argv), str(blocker if kind != "not_writable" else locked))
    assert "Errno" not in line


# -- 2/3. test, extract and convert do not replace earlier outputs ------------------------------------------------
def test_test_and_extract_refuse_earlier_outputs_unless_force(tmp_path, capsys, monkeypatch):
    import maest.eval.features
    import maest.eval.test

    calls = []

    def fake_run_test(checkpoint, data, out, **kw):
        calls.append("test")
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "results.json").write_text("{}")
        return {"top1": 1.0, "top5": 1.0, "videos": 1, "failed_videos": 0, "views_per_video": 1.0, "failed": []}

    monkeypatch.setattr(maest.eval.test, "run_test", fake_run_test)
    out = tmp_path / "test"
    out.mkdir()
    (out / "results.json").write_text('{"top1": 50}')
    argv = ["test", "c.pt", "data.csv", "--output-dir", str(out)]
    _one_line_error(capsys, main(argv), "results.json", "--force")
    assert calls == [] and (out / "results.json").read_text() == '{"top1": 50}'
    assert main([*argv, "--force"]) == 0 and calls == ["test"]

    feats = tmp_path / "features"
    feats.mkdir()
    (feats / "features.npy").write_bytes(b"old")
    monkeypatch.setattr(maest.eval.features, "load_encoder", lambda *a: (_ for _ in ()).throw(AssertionError("work")))
    _one_line_error(capsys, main(["extract", "data", "--checkpoint", "c.pt", "--out", str(feats)]),
                    "features.npy", "--force")
    assert (feats / "features.npy").read_bytes() == b"old"


def test_convert_refuses_to_replace_an_output_unless_force(tmp_path, capsys):
    src = tmp_path / "official.pt"
    from maest.models import create_model

    ckpt.atomic_save({"model_state": create_model("tiny").state_dict()}, src)
    out = tmp_path / "out.pt"
    out.write_bytes(b"precious")
    argv = ["convert", str(src), str(out), "--from", "official", "--model", "mae_vit_tiny_test", "--num-frames", "4",
            "--img-size", "32"]
    _one_line_error(capsys, main(argv), "out.pt", "--force")
    assert out.read_bytes() == b"precious"
    assert main([*argv, "--force"]) == 0
    assert "model" in ckpt.load_checkpoint(out)


# -- labels and input files ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("label", ["15", "-2", "-1"])
def test_labels_are_checked_against_num_classes_when_read(label, tmp_path):
    from maest.data.datasets import dataset_from_source, read_csv_list

    lst = tmp_path / "train.csv"
    lst.write_text(f"a.mp4 0\nb.mp4 {label}\n")
    with pytest.raises(ValueError, match=rf"train.csv:2: label {label} .*num_classes=10"):
        read_csv_list(lst, num_classes=10)
    with pytest.raises(ValueError, match=r"train.csv:2"):
        dataset_from_source(lst, mode="finetune", num_classes=10)
    read_csv_list(lst)  # without a class count (pre-training) any label is accepted


def test_finetune_with_out_of_range_labels_fails_before_training(tmp_path, capsys):
    lst = tmp_path / "train.csv"
    lst.write_text("a.mp4 0\nb.mp4 1\nc.mp4 15\n")
    _one_line_error(capsys, main(["finetune", str(lst), "--preset", "tiny_finetune", "--output-dir",
                                  str(tmp_path / "ft"), *QUIET]), "train.csv:3", "label 15", "model.num_classes=3")


def test_too_many_class_folders_for_num_classes(tmp_path):
    from maest.data.datasets import dataset_from_source

    for c in "abcd":
        (tmp_path / c).mkdir()
        (tmp_path / c / "v.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match="4 class folders .*num_classes=3"):
        dataset_from_source(tmp_path, mode="finetune", num_classes=3)


def test_malformed_json_config_and_binary_list_name_the_file(tmp_path, capsys):
    bad = tmp_path / "config.json"
    bad.write_text('{"train": {"epochs": 2,}}')
    _one_line_error(capsys, main(["pretrain", "x", "--config", str(bad)]), "config.json", "line 1")
    notdict = tmp_path / "list.json"
    notdict.write_text("[1, 2]")
    _one_line_error(capsys, main(["pretrain", "x", "--config", str(notdict)]), "list.json")
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"trian": {}}')
    _one_line_error(capsys, main(["pretrain", "x", "--config", str(unknown)]), "unknown.json", "trian")
    binary = tmp_path / "videos.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    from maest.data.datasets import read_csv_list

    with pytest.raises(ValueError, match="videos.csv is not a text"):
        read_csv_list(binary)
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"a.mp4\x00\x00 0\n")
    with pytest.raises(ValueError, match="nul.csv is not a text"):
        read_csv_list(nul)


class Evil:
    """Not on torch's allow-list: a weights-only load must refuse it."""


def test_pickled_checkpoint_message_says_what_to_do(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "obj": Evil()}, path)
    with pytest.raises(ckpt.CheckpointError) as e:
        ckpt.load_checkpoint(path)
    msg = str(e.value)
    assert "not a plain-tensor checkpoint" in msg and "Evil" in msg and "weights_only=False" in msg
    assert "\n" not in msg and "set weights_only to False" not in msg


def test_resume_without_a_checkpoint_says_so(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="maest"):
        run(_cfg(tmp_path, "train.max_steps=1", "train.resume=auto"), dataset=RandomClips())
    assert any("no checkpoint" in r.getMessage() and "step 0" in r.getMessage() for r in caplog.records)


def test_demo_without_scikit_learn_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    _one_line_error(capsys, main(["demo", "--quick", "--out", str(tmp_path / "demo")]), "maest[demo]")


def test_demo_says_what_it_replaces(tmp_path, capsys, monkeypatch):
    """A second demo into the same folder says it replaces the earlier run and writes a fresh checkpoint."""
    pytest.importorskip("sklearn")
    import maest.train.pretrain

    seen = []

    class Stop(Exception):
        pass

    def fake_run(cfg):  # stands in for training: the demo's folder handling happens before it
        seen.append(cfg.train.overwrite)
        raise Stop

    monkeypatch.setattr(maest.train.pretrain, "run", fake_run)
    out = tmp_path / "demo"
    with pytest.raises(Stop):
        main(["demo", "--quick", "--out", str(out)])
    assert "replaces" not in capsys.readouterr().out
    ckpt.atomic_save({"step": 1}, ckpt.checkpoint_path(out / "run", 1))
    with pytest.raises(Stop):
        main(["demo", "--quick", "--out", str(out)])
    assert "replaces the earlier demo run" in capsys.readouterr().out
    assert seen == [False, True]


# -- logs ---------------------------------------------------------------------------------------------------------
def test_piped_output_gets_plain_lines_not_a_progress_bar(tmp_path, capfd, caplog):
    with caplog.at_level(logging.INFO, logger="maest"):
        run(_cfg(tmp_path, "train.progress=true", "train.log_every=2", "train.epochs=2"), dataset=RandomClips())
    err = capfd.readouterr().err
    assert "\r" not in err and "it/s" not in err and "step/s" not in err
    lines = [r.getMessage() for r in caplog.records]
    steps = [m for m in lines if m.startswith("pretrain step ")]
    assert [m.split()[2] for m in steps] == ["2/8:", "4/8:", "6/8:", "8/8:"]
    assert all("loss" in m and "lr" in m and "clips/s" in m and "ETA" in m for m in steps)
    assert sum(m.startswith("epoch ") for m in lines) == 2


def test_progress_false_still_logs_each_epoch(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="maest"):
        run(_cfg(tmp_path, "train.progress=false", "train.epochs=2"), dataset=RandomClips())
    lines = [r.getMessage() for r in caplog.records]
    assert [m.split(":")[0] for m in lines if m.startswith("epoch ")] == ["epoch 1/2", "epoch 2/2"]
    assert not any(m.startswith("pretrain step ") for m in lines)


# -- packaging ------------------------------------------------------------------------------------------------------
def test_license_and_optional_tensorboard_in_pyproject():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "Apache-2.0"
    assert "Apache License" in (ROOT / "LICENSE").read_text() and "Version 2.0" in (ROOT / "LICENSE").read_text()
    assert not any(d.startswith("tensorboard") for d in meta["dependencies"])
    assert any(d.startswith("tensorboard") for d in meta["optional-dependencies"]["tensorboard"])


def test_missing_tensorboard_is_one_clear_line(tmp_path, monkeypatch):
    from maest.runs.metrics import MetricsLogger

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(RuntimeError, match=r"train.tensorboard=true needs .*maest\[tensorboard\]"):
        MetricsLogger(tmp_path, tensorboard=True)
    MetricsLogger(tmp_path, tensorboard=False).close()


def test_tensorboard_is_used_when_installed_unless_turned_off(tmp_path):
    pytest.importorskip("tensorboard")
    from maest.runs.metrics import MetricsLogger

    for setting, expect in ((None, True), (True, True), (False, False)):
        run_dir = tmp_path / str(setting)
        logger = MetricsLogger(run_dir, tensorboard=setting)
        logger.log(1, loss=0.5)
        logger.close()
        assert bool(list(run_dir.glob("tb/events.out.tfevents.*"))) == expect


def test_tensorboard_default_runs_without_the_package(tmp_path, monkeypatch):
    import importlib.util

    from maest.runs.metrics import MetricsLogger

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    logger = MetricsLogger(tmp_path, tensorboard=None)
    logger.log(1, loss=0.5)
    logger.close()
    assert not (tmp_path / "tb").exists() and read_metrics(tmp_path / "metrics.jsonl")[0]["loss"] == 0.5
