"""Writing shards (``maest shard``): videos packed into WebDataset tar shards with a manifest, or a
manifest for shards another tool wrote. The layout is described in :mod:`maest.data.shard_files`."""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
from pathlib import Path
from typing import Any

from maest.data.decode import Video, VideoDecodeError, open_video
from maest.data.shard_files import FORMAT, MANIFEST, resolve_shards
from maest.runs.progress import counter

log = logging.getLogger("maest.data")
DEFAULT_SHARD_BYTES = 1_000_000_000


def write_shards(items: list[tuple[str, int]], out_dir: str | Path, classes: list[str] | None = None,
                 prefix: str = "train", shard_bytes: int = DEFAULT_SHARD_BYTES, overwrite: bool = False,
                 progress: bool = True, backend: str = "auto") -> dict[str, Any]:
    """Pack videos into ``<prefix>-000000.tar``... of about ``shard_bytes`` each plus ``manifest.json``.

    Each video is probed (frames, fps, size); one that cannot be opened is listed under ``skipped`` in
    the manifest and left out. Shards and the manifest are written to temporary names and renamed.

    Returns:
        the manifest (also written to ``out_dir/manifest.json``).
    """
    out = Path(out_dir)
    _prepare_output(out, prefix, overwrite)
    packer = _Packer(out, prefix, shard_bytes)
    skipped: list[dict[str, str]] = []
    bar = counter(len(items), "shard", "video", progress)
    for path, label in items:
        bar.update(1)
        try:
            video = open_video(path, backend)
            data = Path(path).read_bytes()
        except (VideoDecodeError, OSError) as e:
            skipped.append({"path": str(path), "reason": getattr(e, "reason", str(e))})
            log.warning("skipping unreadable video %s (%s)", path, getattr(e, "reason", e))
            continue
        packer.add(_members(path, label, video, data, classes))
    packer.close()
    bar.close()
    if not packer.shards:
        raise ValueError(f"none of the {len(items)} videos could be read; nothing written to {out}")
    manifest = {"format": FORMAT, "num_samples": packer.total, "shards": packer.shards, "classes": classes,
                "label_map": {c: i for i, c in enumerate(classes)} if classes else None, "skipped": skipped}
    write_manifest(manifest, out / MANIFEST)
    return manifest


def _prepare_output(out: Path, prefix: str, overwrite: bool) -> None:
    """Create the folder ``out``; shards named ``prefix`` or a manifest already there are refused, or
    removed with ``overwrite``. A ``prefix`` that is not a plain name (``../x``, ``a/b``) is refused: shards
    are written into ``out`` and nowhere else."""
    if not prefix or prefix in (".", "..") or "/" in prefix or "\\" in prefix or "\0" in prefix:
        raise ValueError(f"--prefix {prefix!r} must be a plain file name (no folders or '..'): shards are "
                         f"written into {out} as PREFIX-000000.tar")
    if out.exists() and not out.is_dir():
        raise ValueError(f"shard output {out} is a file; pass a folder")
    out.mkdir(parents=True, exist_ok=True)
    old = sorted(out.glob(f"{prefix}-*.tar")) + ([out / MANIFEST] if (out / MANIFEST).exists() else [])
    if old and not overwrite:
        raise ValueError(f"{out} already holds shards ({old[0].name}, ...); choose another folder or pass --overwrite")
    for f in old:
        f.unlink()


def _members(path: str, label: int, video: Video, data: bytes, classes: list[str] | None
             ) -> list[tuple[str, bytes]]:
    """A sample's tar members (extension, bytes), the video first: its file as it is, its json, and its
    label and class name when known."""
    name = classes[label] if classes and 0 <= label < len(classes) else None
    meta = {"label": label, "path": str(path), "duration": video.num_frames / video.fps if video.fps else None,
            "fps": video.fps, "num_frames": video.num_frames, "width": video.width, "height": video.height,
            "class": name}
    ext = Path(path).suffix.lower().lstrip(".") or "mp4"
    members = [(ext, data), ("json", json.dumps(meta).encode())]
    if label >= 0:
        members.append(("cls", str(label).encode()))
    if name is not None:
        members.append(("txt", name.encode()))
    return members


class _Packer:
    """Samples into ``<prefix>-000000.tar``, ``-000001.tar``, ... of about ``shard_bytes`` each; a shard
    is written as ``.tar.tmp``, synced and renamed when the next video would overfill it (or on close).
    Samples are keyed by their number over all shards."""

    def __init__(self, out: Path, prefix: str, shard_bytes: int) -> None:
        self.out, self.prefix, self.shard_bytes = out, prefix, shard_bytes
        self.shards: list[dict[str, Any]] = []  # the manifest's entries of the closed shards
        self.total = 0
        self.tf: tarfile.TarFile | None = None  # the open shard, its temporary file and its samples
        self.tmp: Path | None = None
        self.count = 0

    def add(self, members: list[tuple[str, bytes]]) -> None:
        video = members[0][1]
        if self.tf is not None and self.tf.fileobj.tell() + len(video) > self.shard_bytes:  # type: ignore[union-attr]
            self.close()
        if self.tf is None:
            self.tmp = self.out / f"{self.prefix}-{len(self.shards):06d}.tar.tmp"
            self.tf = tarfile.open(self.tmp, "w", format=tarfile.USTAR_FORMAT)
        key = f"{self.total:09d}"
        for ext, data in members:
            _add(self.tf, f"{key}.{ext}", data)
        self.count += 1
        self.total += 1

    def close(self) -> None:
        if self.tf is None:
            return
        self.tf.close()
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())
        final = self.tmp.with_suffix("")  # type: ignore[union-attr]
        os.replace(self.tmp, final)
        self.shards.append({"url": final.name, "count": self.count, "bytes": final.stat().st_size})
        self.tf, self.tmp, self.count = None, None, 0


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644  # reproducible shards
    tf.addfile(info, io.BytesIO(data))


def index_shards(source: str, out: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """A manifest for existing shards (e.g. video2dataset's), counting their samples once. ``source``
    is what the user typed, so a ``pipe:`` source runs; the manifest keeps the commands as written, and
    whoever reads it later is refused them unless they opt in (see :func:`~maest.data.shard_files.resolve_shards`)."""
    target = Path(out)
    if target.exists() and not overwrite:
        raise ValueError(f"{target} exists; pass --overwrite to replace it")
    shards = resolve_shards(source, allow_pipe=str(source).startswith("pipe:"))
    listed = [{"url": u, "count": c} for u, c in zip(shards.urls, shards.counts, strict=True)]
    manifest = {"format": FORMAT, "num_samples": shards.num_samples, "classes": None, "label_map": None,
                "shards": listed, "skipped": []}
    write_manifest(manifest, target)
    return manifest


def write_manifest(manifest: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, path)
