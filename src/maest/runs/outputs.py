"""Checks on where a command will write, done before any work: the folder can be created and written,
and earlier results are not replaced unless the user asked (``--force`` / ``--overwrite``).

Every failure is a :class:`ValueError` whose one line names the path and the fix, so the CLI prints it
without a traceback.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def writable_dir(path: str | Path, flag: str) -> Path:
    """Create folder ``path`` if needed and check that files can be written in it.

    Args:
        path: the output folder.
        flag: the option that chose it, for the message (e.g. ``--output-dir``).

    Raises:
        ValueError: ``path`` is a file, sits inside a file, or cannot be created or written.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{flag} {p} is a file, not a folder; choose a folder path for {flag}")
    _make_writable(p, p, flag)
    return p


def writable_file(path: str | Path, flag: str, force: bool = True) -> Path:
    """Check that file ``path`` can be written (its folder is created) and, unless ``force``, that it
    does not exist yet (an earlier result).

    Raises:
        ValueError: ``path`` is a folder, exists and ``force`` is False, or its folder cannot be written.
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {p} is a folder; give a file path")
    if p.exists() and not force:
        raise ValueError(f"{p} already exists; pass --force to replace it, or choose another {flag}")
    _make_writable(p.parent, p, flag)
    return p


def _make_writable(folder: Path, target: Path, flag: str) -> None:
    """Create ``folder`` and probe a write there; errors name ``target`` (what ``flag`` asked for)."""
    blocker = next((a for a in (folder, *folder.parents) if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        raise ValueError(f"{flag} {target} cannot be created: {blocker} is a file; choose another path for {flag}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _probe_write(folder)
    except OSError as e:
        where = next((a for a in (folder, *folder.parents) if a.exists()), folder)
        raise ValueError(f"{flag} {target} is not writable ({e.strerror or type(e).__name__} in {where}); "
                         f"choose a path you can write to") from None


def refuse_existing(folder: str | Path, names: Iterable[str], flag: str, force: bool) -> list[Path]:
    """Raise if ``folder`` already holds any of ``names`` (an earlier result) and ``force`` is False.

    Returns:
        the existing files (to be replaced when ``force``).
    """
    found = [Path(folder) / n for n in names if (Path(folder) / n).exists()]
    if found and not force:
        raise ValueError(f"{folder} already holds {', '.join(f.name for f in found)} from an earlier run; "
                         f"pass --force to replace them, or choose another {flag}")
    return found


def device_of(path: str | Path) -> str:
    """The device (and mount point) holding ``path``, for a message: ``/dev/sda1 (mounted at /data)``,
    or the mount point alone where /proc/self/mounts does not say."""
    p = Path(path).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    mount = p
    while mount != mount.parent and os.stat(mount.parent).st_dev == os.stat(mount).st_dev:
        mount = mount.parent
    try:
        mounts = [line.split()[:2] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        mounts = []
    devices = [dev for dev, where in mounts if where.replace("\\040", " ") == str(mount)]
    return f"{devices[-1]} (mounted at {mount})" if devices else f"the device mounted at {mount}"


def _probe_write(folder: Path) -> None:
    """Create and delete a temporary file in ``folder`` (raises OSError when that is not allowed)."""
    fd, name = tempfile.mkstemp(prefix=".maest-write-check.", dir=folder)
    os.close(fd)
    os.unlink(name)
