"""One run per run folder: an exclusive lock on ``<run folder>/.maest.lock``, held by the training
process for as long as the run lasts (under torchrun: rank 0, for all ranks, which share the folder).

The lock is ``flock`` (an advisory POSIX lock across processes; on Linux NFS it is carried by ``fcntl``
byte-range locks): the kernel releases it when its process dies, however it dies, so a lock is never
left behind. The file also records who holds it (PID, host, start time): a second run into the folder
is refused with that holder named, and a record left by a process that is gone (killed, or a crashed
machine) is taken over with a message saying so.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("maest")
LOCK_NAME = ".maest.lock"


class RunFolderBusy(ValueError):
    """Another live run holds the run folder's lock."""


def busy_message(folder: str | Path, who: str) -> str:
    """The refusal of a run into ``folder``, whose lock ``who`` holds."""
    return (f"run folder {folder} is in use by another run ({who}); wait for it to end or stop it, "
            "or choose another --output-dir")


class RunLock:
    """The exclusive lock of a run folder: ``with RunLock(folder): ...`` or :meth:`acquire` / :meth:`release`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise :class:`RunFolderBusy` naming the run that holds it.

        Raises:
            RunFolderBusy: another process holds the lock now.
            OSError: the lock file cannot be created.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _describe(_read(fd))
            os.close(fd)
            raise RunFolderBusy(busy_message(self.folder, who)) from None
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            log.warning("run folder %s: its file system has no locks (%s); a second run into it would not be "
                        "detected", self.folder, e.strerror)
            return self
        stale = _read(fd)
        if stale.get("pid") not in (None, os.getpid()):
            log.warning("run folder %s: taking over the lock left by %s, which is no longer running",
                        self.folder, _describe(stale))
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": round(time.time(), 3)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Clear the holder record and unlock (the file stays: removing it would race a waiting run)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(folder: str | Path) -> str | None:
    """Who holds ``folder``'s lock now (PID, host, since), or None when no live run does; takes nothing and
    creates nothing (a run checks this before its slow start-up, then takes the lock itself)."""
    try:
        fd = os.open(Path(folder) / LOCK_NAME, os.O_RDWR)
    except OSError:  # no lock file (or none that can be opened): no run has held this folder
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _describe(_read(fd))
    except OSError:  # a file system without locks: nothing to tell
        return None
    finally:
        os.close(fd)  # closing drops a lock this probe took
    return None


def _read(fd: int) -> dict[str, Any]:
    """The holder record in the lock file ({} when empty or unreadable)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode(errors="replace") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(record: dict[str, Any]) -> str:
    if not record:
        return "holder unknown"
    since = record.get("started")
    when = time.strftime(", since %Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else ""
    return f"PID {record.get('pid', '?')} on host {record.get('host', '?')}{when}"
