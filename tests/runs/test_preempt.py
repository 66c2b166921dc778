"""Issue 21 §3, preemption as clusters send it: SIGTERM or SIGINT to a real ``maest pretrain`` process
finishes the step, saves, writes the curves, stops the loader workers and exits 128 + signal with one
line; the resumed run ends bit-identical to an uninterrupted one; a second signal exits at once; two
ranks stop at the same step when only one is signalled; and ``train.save_every_minutes`` saves on a timer."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from maest.runs import checkpoint as ckpt
from maest.train.pretrain import run

from ..conftest import RandomClips
from ..helpers import _cfg

pytestmark = pytest.mark.usefixtures("no_curves")
WORKER = Path(__file__).with_name("preempt_worker.py")
ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ["train.epochs=100", "train.log_every=1", "train.progress=false", "train.tensorboard=false"]


def _start(out: Path, *extra: str, env: dict[str, str] | None = None, group: bool = False) -> subprocess.Popen:
    args = [sys.executable, str(WORKER), "pretrain", "unused", "--preset", "tiny", "--output-dir", str(out),
            "--set", "train.max_steps=200"]
    for item in [*SETTINGS, *extra]:
        args += ["--set", item]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=group,
                            env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), **(env or {})})


def _wait_for_step(proc: subprocess.Popen, step: int) -> None:
    for line in proc.stdout:
        if line.startswith("step ") and int(line.split()[1]) >= step:
            return
    pytest.fail(f"the run ended before step {step}: {proc.stderr.read()[-2000:]}")


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie waiting for a reaper does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted 10-step run (the same settings as the signalled one)."""
    out = tmp_path_factory.mktemp("straight")
    import maest.train.loop

    real, maest.train.loop.write_run_curves = maest.train.loop.write_run_curves, lambda run_dir: None
    try:
        run(_cfg(out, "train.max_steps=10", "train.epochs=100", "data.num_workers=2"), dataset=RandomClips())
    finally:
        maest.train.loop.write_run_curves = real
    return ckpt.load_checkpoint(ckpt.checkpoint_path(out, 10))["model"]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads worker PIDs from /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_and_the_resume_is_bit_identical(tmp_path, straight, sig):
    proc = _start(tmp_path, "data.num_workers=2")
    try:
        _wait_for_step(proc, 3)
        workers = _children(proc.pid)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, err[-3000:]
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "stopped at step" in line]
    assert len(lines) == 1 and "resume with --resume" in lines[0] and sig.name in lines[0], err[-2000:]
    step = int(lines[0].split("stopped at step ")[1].split()[0])
    assert 3 <= step < 10 and ckpt.checkpoint_step(ckpt.list_checkpoints(tmp_path)[-1]) == step
    assert (tmp_path / "curves.png").is_file()
    assert len(workers) == 2 and not any(_alive(w) for w in workers)  # the loader workers stopped with it
    resumed = run(_cfg(tmp_path, "train.max_steps=10", "train.epochs=100", "data.num_workers=2",
                       "train.resume=auto"), dataset=RandomClips())
    assert resumed["steps"] == 10
    state = ckpt.load_checkpoint(resumed["checkpoint"])["model"]
    assert all(torch.equal(state[k], straight[k]) for k in straight)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads worker PIDs from /proc")
def test_sigterm_to_the_whole_process_group_stops_cleanly_too(tmp_path):
    """A cluster may signal every process of the job: the loader workers keep serving the current step."""
    proc = _start(tmp_path, "data.num_workers=2", group=True)
    try:
        _wait_for_step(proc, 3)
        workers = _children(proc.pid)
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143 and "Traceback" not in err, err[-2000:]
    assert "stopped at step" in err and ckpt.list_checkpoints(tmp_path)
    time.sleep(0.2)
    assert not any(_alive(w) for w in workers)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads worker PIDs from /proc")
def test_a_second_signal_exits_at_once(tmp_path):
    proc = _start(tmp_path, "data.num_workers=2", env={"PREEMPT_SLOW": "4"})  # 4 s per step
    try:
        _wait_for_step(proc, 1)
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGINT)
        for line in proc.stderr:
            if "stopping after the current step" in line:
                break
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        took = time.perf_counter() - t0
    finally:
        proc.kill()
    assert proc.returncode == 130 and took < 2.0
    assert [ckpt.checkpoint_step(p) for p in ckpt.list_checkpoints(tmp_path)] == []  # step 2 was never finished
    time.sleep(0.2)
    assert not any(_alive(w) for w in workers)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_stop_at_the_same_step_when_one_is_signalled(tmp_path):
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}
    procs = [_start(tmp_path, "data.num_workers=0", "train.device=cpu",
                    env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(2)]
    try:
        _wait_for_step(procs[0], 3)
        procs[1].send_signal(signal.SIGTERM)  # only rank 1 hears it
        errs = [p.communicate(timeout=120)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [143, 143], errs[0][-2000:] + errs[1][-2000:]
    steps = {int(e.split("stopped at step ")[1].split()[0]) for e in errs}
    assert len(steps) == 1
    assert ckpt.checkpoint_step(ckpt.list_checkpoints(tmp_path)[-1]) == steps.pop()


def test_save_every_minutes_saves_on_a_timer(tmp_path):
    run(_cfg(tmp_path, "train.max_steps=3", "train.save_every_minutes=1e-9", "train.keep_checkpoints=0"),
        dataset=RandomClips())
    assert [ckpt.checkpoint_step(p) for p in ckpt.list_checkpoints(tmp_path)] == [1, 2, 3]
    with pytest.raises(ValueError, match="train.save_every_minutes=-1.0 must be >= 0"):
        _cfg(tmp_path, "train.save_every_minutes=-1").validate()
