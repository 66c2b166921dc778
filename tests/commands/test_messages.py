"""Issue 13, no traceback: each CLI failure is one line on stderr (exit code 2) that names the file or
setting and the fix: used run folders, empty or weights-only checkpoints, bad settings, a non-finite loss,
unusable output folders, earlier outputs, malformed configs and the demo's extra."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from maest.cli import main
from maest.runs import checkpoint as ckpt

from ..conftest import RandomClips
from ..helpers import QUIET, _one_line_error

pytestmark = pytest.mark.usefixtures("no_curves")


# -- used run folders --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_cli_refuses_a_used_run_folder_in_one_line(command, tmp_path, capsys, fake_data):
    preset = "tiny" if command == "pretrain" else "tiny_finetune"
    args = [command, "unused", "--preset", preset, "--output-dir", str(tmp_path), "--set", "train.max_steps=1",
            *QUIET]
    assert main(args) == 0
    _one_line_error(capsys, main(args), str(tmp_path), "--resume", "--output-dir", "--overwrite")
    assert main([*args, "--overwrite"]) == 0
    assert main([*args, "--resume"]) == 0


# -- one-line errors ---------------------------------------------------------------------------------------------------
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


# -- 2/3. test, extract and convert do not replace earlier outputs -----------------------------------------------------
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


# -- input files and the demo ------------------------------------------------------------------------------------------
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
