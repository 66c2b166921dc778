"""Issue 21 through the CLI: a pipe: source runs when typed, never from a --config file; every command
that reads a checkpoint's model description says in one line which file and field are wrong; a pickle
payload is refused the same way everywhere; an error raised in a loader worker reaches the user as its
own line, not the worker's traceback; Ctrl-C outside a run is one line too."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

from maest.cli import build_parser, main, one_line
from maest.commands.common import RUN_FLAGS, resolve_config
from maest.data.shard_files import PipeRefused
from maest.models import model_config
from maest.runs import checkpoint as ckpt
from maest.train.config import PretrainConfig
from maest.train.recipes import pretrain_preset

from ..helpers import QUIET, _one_line_error

pytestmark = pytest.mark.usefixtures("no_curves")


class SystemCall:
    def __reduce__(self):
        return os.system, ("true",)


@pytest.fixture
def damaged(tmp_path):
    """A maest checkpoint whose model_config says depth "2" (a string), and a pickle payload."""
    cfg = model_config("mae_vit_tiny_test")
    desc = dataclasses.asdict(cfg)
    desc["encoder"]["depth"] = "2"
    typed = tmp_path / "typed.pt"
    ckpt.atomic_save(ckpt.model_record(cfg.build().state_dict(), "mae", desc), typed)
    payload = tmp_path / "payload.pt"
    torch.save({"model": {}, "x": SystemCall()}, payload)
    (tmp_path / "list.csv").write_text("a.mp4 0\n")
    (tmp_path / "a.mp4").write_bytes(b"not a video")
    return typed, payload


def _commands(tmp_path, path):
    data, video = str(tmp_path / "list.csv"), str(tmp_path / "a.mp4")
    return {
        "reconstruct": ["reconstruct", video, "--checkpoint", str(path), "--out", str(tmp_path / "r")],
        "extract": ["extract", data, "--checkpoint", str(path), "--out", str(tmp_path / "f")],
        "test": ["test", str(path), data, "--output-dir", str(tmp_path / "t")],
        "convert": ["convert", str(path), str(tmp_path / "out.pt")],
        "finetune": ["finetune", "unused", "--preset", "tiny_finetune", "--init", str(path),
                     "--output-dir", str(tmp_path / "ft"), *QUIET],
        "linprobe": ["linprobe", "unused", "--preset", "tiny_linprobe", "--init", str(path),
                     "--output-dir", str(tmp_path / "lp"), *QUIET],
    }


@pytest.mark.parametrize("command", ["reconstruct", "extract", "test", "convert", "finetune", "linprobe"])
def test_every_command_names_the_damaged_model_field(tmp_path, damaged, capsys, command):
    typed, payload = damaged
    _one_line_error(capsys, main(_commands(tmp_path, typed)[command]), str(typed),
                    'model_config.encoder.depth="2"')
    _one_line_error(capsys, main(_commands(tmp_path, payload)[command]), str(payload),
                    "it would execute code to load")


def test_an_error_in_a_loader_worker_is_its_own_line():
    from torch._utils import ExceptionWrapper

    try:
        raise ValueError("shard x.tar:000003: label 99 is outside [0, 5)")
    except ValueError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 1")
    with pytest.raises(ValueError) as e:
        wrapped.reraise()
    assert "Traceback" in str(e.value)
    assert one_line(e.value) == "shard x.tar:000003: label 99 is outside [0, 5)"


def test_ctrl_c_outside_a_training_loop_is_one_line(monkeypatch, capsys):
    import maest.commands.models as models

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "main", interrupted)
    assert main(["models"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "maest models: interrupted"


def _resolve(argv: list[str]) -> PretrainConfig:
    args = build_parser().parse_args(argv)
    return resolve_config(args, PretrainConfig, pretrain_preset, RUN_FLAGS)


def test_a_pipe_source_runs_when_typed_not_when_read_from_a_config_file(tmp_path, monkeypatch):
    monkeypatch.delenv("MAEST_ALLOW_PIPE", raising=False)
    command = f"pipe:touch {tmp_path / 'pwned'}; cat x.tar"
    assert _resolve(["pretrain", command, "--preset", "tiny"]).data.allow_pipe
    assert _resolve(["pretrain", "--preset", "tiny", "--set", f"data.source={command}"]).data.allow_pipe
    cfg = pretrain_preset.get("tiny")
    cfg.data.source, cfg.data.allow_pipe = command, True  # a file cannot opt itself in
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    with pytest.raises(PipeRefused, match="config file .*config.json.*data.allow_pipe=true"):
        _resolve(["pretrain", "--config", str(tmp_path / "config.json")])
    with pytest.raises(PipeRefused):  # the library refuses it too, should anyone build the data from the file
        cfg.data.allow_pipe = False
        cfg.data.build(cfg.model.encoder)
    ok = _resolve(["pretrain", "--config", str(tmp_path / "config.json"), "--set", "data.allow_pipe=true"])
    assert ok.data.allow_pipe and not (tmp_path / "pwned").exists()


def test_a_full_disk_is_one_line_naming_the_device_and_file(tmp_path):
    import errno

    e = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.csv"))
    line = one_line(e)
    assert line.startswith("no space left on ") and "mounted at" in line and f"writing {tmp_path / 'out.csv'}" in line
    assert "Errno" not in line and one_line(OSError(errno.ENOSPC, "x")).startswith("no space left on the device")
