"""Issue 21 §6: resuming from a checkpoint past this run's planned steps is refused in one line (it
used to exit 0 and do nothing, silently); resuming a run that already reached its last step says so."""

from __future__ import annotations

import logging

import pytest

from maest.cli import main

from ..helpers import QUIET, _one_line_error

pytestmark = pytest.mark.usefixtures("no_curves")


def test_a_checkpoint_past_the_planned_steps_is_refused_and_one_at_the_end_says_so(tmp_path, capsys, caplog,
                                                                                     fake_data):
    args = ["pretrain", "unused", "--preset", "tiny", "--output-dir", str(tmp_path), *QUIET]
    assert main([*args, "--set", "train.max_steps=3"]) == 0
    capsys.readouterr()
    code = main([*args, "--resume", "--set", "train.max_steps=2"])
    _one_line_error(capsys, code, "step 3", "past this run's last step 2", "train.max_steps")
    with caplog.at_level(logging.WARNING, logger="maest"):
        assert main([*args, "--resume", "--set", "train.max_steps=3"]) == 0
    assert any("already reached its last step (3)" in r.getMessage() for r in caplog.records)
