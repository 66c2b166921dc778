"""Issue 13, run folders: a used folder is refused unless resumed or overwritten, saves replace files
atomically with the umask's mode, stale temporaries go, metrics.jsonl is cut back on a resume, and a pickled
checkpoint says what to do."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest
import torch

from maest.cli import main
from maest.runs import checkpoint as ckpt
from maest.train.pretrain import run

from ..conftest import RandomClips
from ..helpers import QUIET, _cfg, _steps

pytestmark = pytest.mark.usefixtures("no_curves")


# -- 1. run folders ----------------------------------------------------------------------------------------------------
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


def test_cli_resume_of_a_finished_run_reports_no_checkpoint_of_its_own(tmp_path, capsys, fake_data):
    args = ["pretrain", "unused", "--preset", "tiny", "--output-dir", str(tmp_path), "--set", "train.max_steps=1",
            *QUIET]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--resume", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 1 and summary["checkpoint"] is None


def test_resume_without_a_checkpoint_says_so(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="maest"):
        run(_cfg(tmp_path, "train.max_steps=1", "train.resume=auto"), dataset=RandomClips())
    assert any("no checkpoint" in r.getMessage() and "step 0" in r.getMessage() for r in caplog.records)


# -- 4. stale temporaries ----------------------------------------------------------------------------------------------
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


# -- 5. metrics after a resume -----------------------------------------------------------------------------------------
def test_resume_truncates_metrics_past_the_resumed_step(tmp_path):
    run(_cfg(tmp_path, "train.max_steps=4", "train.save_every_steps=2", "train.keep_checkpoints=0"),
        dataset=RandomClips())
    ckpt.checkpoint_path(tmp_path, 4).unlink()  # as if killed after logging step 4, before saving it
    run(_cfg(tmp_path, "train.max_steps=4", "train.resume=auto"), dataset=RandomClips())
    assert _steps(tmp_path) == [1, 2, 3, 4]


# -- file permissions --------------------------------------------------------------------------------------------------
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


# -- pickled checkpoints -----------------------------------------------------------------------------------------------
class Evil:
    """Not on torch's allow-list: a weights-only load must refuse it."""


def test_pickled_checkpoint_message_says_what_to_do(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "obj": Evil()}, path)
    with pytest.raises(ckpt.CheckpointError) as e:
        ckpt.load_checkpoint(path)
    msg = str(e.value)
    assert "not a plain-tensor checkpoint; it would execute code to load" in msg and "Evil" in msg
    assert "\n" not in msg and "weights_only" not in msg and "corrupt" not in msg and "Convert it with" in msg
