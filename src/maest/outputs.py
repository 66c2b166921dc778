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
    blocker = next((a for a in p.parents if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        raise ValueError(f"{flag} {p} cannot be created: {blocker} is a file; choose a folder path for {flag}")
    try:
        p.mkdir(parents=True, exist_ok=True)
        _probe_write(p)
    except OSError as e:
        where = next((a for a in (p, *p.parents) if a.exists()), p)
        raise ValueError(f"{flag} {p} is not writable ({e.strerror or type(e).__name__} in {where}); "
                         f"choose a folder you can write to") from None
    return p


def writable_file(path: str | Path, flag: str, force: bool) -> Path:
    """Check that file ``path`` can be written (its folder is created) and does not hold an earlier result.

    Raises:
        ValueError: ``path`` exists and ``force`` is False, is a folder, or its folder is not writable.
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {p} is a folder; give a file path")
    if p.exists() and not force:
        raise ValueError(f"{p} already exists; pass --force to replace it, or choose another {flag}")
    writable_dir(p.parent, f"the folder of {flag}")
    return p


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


def _probe_write(folder: Path) -> None:
    """Create and delete a temporary file in ``folder`` (raises OSError when that is not allowed)."""
    fd, name = tempfile.mkstemp(prefix=".maest-write-check.", dir=folder)
    os.close(fd)
    os.unlink(name)
