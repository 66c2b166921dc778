"""Issue 21 §2, one run per folder: a run holds an exclusive lock on its run folder across processes; a
second run is refused in one line naming the holder's PID and host, before it touches anything; a lock
left by a process that died is taken over with a message; the lock is free again when a run ends."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from maest.cli import main
from maest.runs.lock import LOCK_NAME, RunFolderBusy, RunLock
from maest.train.pretrain import run

from ..conftest import RandomClips
from ..helpers import QUIET, _cfg, _one_line_error

pytestmark = pytest.mark.usefixtures("no_curves")


@pytest.fixture
def holder(tmp_path):
    """Another process holding the run folder's lock (as a run in progress does)."""
    code = textwrap.dedent(f"""
        import sys, time
        from maest.runs.lock import RunLock
        RunLock({str(tmp_path)!r}).acquire()
        print("locked", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_second_run_into_a_locked_folder_is_refused_naming_the_holder(tmp_path, holder, capsys, fake_data):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    (tmp_path / ".checkpoint-00000002.pt.abcdefgh.tmp").write_bytes(b"the holder's save in flight")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != LOCK_NAME}
    code = main(["pretrain", "unused", "--preset", "tiny", "--output-dir", str(tmp_path), "--resume",
                 "--set", "train.max_steps=1", *QUIET])
    line = _one_line_error(capsys, code, str(tmp_path), f"PID {holder.pid}", socket.gethostname(), "in use")
    assert "--output-dir" in line
    # nothing of the running one was touched: not its metrics, not its in-flight temporary
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != LOCK_NAME} == before


def test_the_lock_excludes_within_one_process_too_and_is_free_after_a_run(tmp_path):
    with RunLock(tmp_path), pytest.raises(RunFolderBusy, match=f"PID {os.getpid()}"):
        RunLock(tmp_path).acquire()
    run(_cfg(tmp_path, "train.max_steps=1"), dataset=RandomClips())
    with RunLock(tmp_path) as again:  # the run released it
        assert again.held


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_message(tmp_path, caplog):
    code = f"from maest.runs.lock import RunLock; RunLock({str(tmp_path)!r}).acquire(); print('locked')"
    dead = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert dead.stdout.strip() == "locked" and str(os.getpid()) not in (tmp_path / LOCK_NAME).read_text()
    with caplog.at_level(logging.WARNING, logger="maest"):
        summary = run(_cfg(tmp_path, "train.max_steps=1"), dataset=RandomClips())
    assert summary["steps"] == 1
    taken = [r.getMessage() for r in caplog.records if "taking over the lock" in r.getMessage()]
    assert len(taken) == 1 and "no longer running" in taken[0] and "PID" in taken[0]


def test_holder_names_a_live_holder_and_takes_nothing(tmp_path, holder):
    from maest.runs.lock import holder as lock_holder

    assert lock_holder(tmp_path / "none") is None and not (tmp_path / "none").exists()  # creates nothing
    who = lock_holder(tmp_path)
    assert who is not None and f"PID {holder.pid}" in who and socket.gethostname() in who


def test_holder_is_none_for_a_released_or_abandoned_lock(tmp_path):
    from maest.runs.lock import holder as lock_holder

    RunLock(tmp_path).acquire().release()
    assert lock_holder(tmp_path) is None
    (tmp_path / LOCK_NAME).write_text('{"pid": 999999999, "host": "gone"}\n')  # its process is gone: no flock
    assert lock_holder(tmp_path) is None
    with RunLock(tmp_path):  # held in this process, on another open file: a second run here is refused too
        assert lock_holder(tmp_path) is not None
