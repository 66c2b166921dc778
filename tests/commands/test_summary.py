"""Issue 22 §4: the end of a command says what was done, where each output went and the next command
(the JSON behind ``--json``), and the log names the model that was built, not the recipe's name."""

from __future__ import annotations

import json
import logging
import shlex

import pytest

from maest.cli import main

from ..helpers import QUIET

pytestmark = pytest.mark.usefixtures("no_curves")


def test_training_ends_with_outputs_and_next_commands(tmp_path, capsys, caplog, fake_data):
    run = tmp_path / "pre"
    with caplog.at_level(logging.INFO, logger="maest"):
        assert main(["pretrain", "unused", "--preset", "tiny", "--output-dir", str(run), "--set",
                     "train.max_steps=2", *QUIET]) == 0
    start = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("pretrain "))
    assert start.startswith("pretrain ViT 32x2, ") and "parameters, 32 tokens (4 frames x 32 px)" in start
    out = capsys.readouterr().out
    assert "{" not in out  # no raw JSON
    lines = out.splitlines()
    assert lines[0].startswith("pre-training finished: 2 steps, last loss ")
    assert f"checkpoint: {run / 'checkpoint-00000002.pt'}" in out and f"metrics:    {run / 'metrics.jsonl'}" in out
    assert f"maest report {run}" in out and "maest finetune TRAIN_DATA --init" in out
    resume = next(line.strip().split("    (")[0] for line in lines if "--resume" in line)
    assert resume.endswith("--resume --set train.max_steps=4")
    # the printed resume command continues the run
    assert main([*shlex.split(resume)[1:], *QUIET, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["steps"] == 4

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="maest"):
        assert main(["finetune", "unused", "--preset", "tiny_finetune", "--output-dir", str(tmp_path / "ft"),
                     "--set", "train.max_steps=1", *QUIET]) == 0
    assert any(r.getMessage().startswith("finetune ViT 32x2, ") for r in caplog.records)
    assert not any("vit_tiny_test" in r.getMessage() for r in caplog.records if "steps/epoch" in r.getMessage())
    out = capsys.readouterr().out
    assert out.startswith("fine-tuning finished: 1 steps") and "maest test " in out and "maest predict " in out


def test_json_keeps_the_machine_readable_result(tmp_path, capsys, fake_data):
    assert main(["pretrain", "unused", "--preset", "tiny", "--output-dir", str(tmp_path), "--set",
                 "train.max_steps=1", *QUIET, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    summary = json.loads(out[0])
    assert summary["steps"] == 1 and summary["checkpoint"].endswith("checkpoint-00000001.pt")
