"""Shard files in the WebDataset format: where shards are (a pattern, a folder, a manifest, ``pipe:``,
a URL), how many samples each holds, and the samples of one shard. :mod:`maest.data.shards` streams
them into training; :mod:`maest.data.shard_writer` (``maest shard``) writes them.

A shard is a plain tar file. Each sample is a run of consecutive members sharing a key (the file name
up to its first dot): the original encoded video (``<key>.mp4``, never re-encoded), ``<key>.json``
(label, path, duration, fps, width, height, class), ``<key>.cls`` (the integer label) and
``<key>.txt`` (the class name). Shards written by other tools in this layout read the same way; for
video2dataset's ``mp4`` + ``json`` + ``txt`` (a caption) the label is -1 unless the json has one.
``manifest.json`` next to the shards lists them with their sample counts and the label map.

The reader is the standard library's ``tarfile`` rather than the ``webdataset`` package: streaming
needs to start reading in the middle of a shard and to know each sample's position, which is what
makes bit-exact resume possible, and per-sample tar overhead (tens of microseconds) is nothing next
to decoding a video (tens of milliseconds), so a library would buy no speed.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("maest.data")
MANIFEST = "manifest.json"
FORMAT = "maest-shards/1"
VIDEO_KEYS = ("mp4", "webm", "mkv", "avi", "mov", "m4v", "mpg", "mpeg", "flv", "ogv")


# -- sources -----------------------------------------------------------------------------------------
def is_remote(url: str) -> bool:
    return url.startswith("pipe:") or "://" in url


def expand_braces(pattern: str) -> list[str]:
    """``train-{000000..000003}.tar`` -> 4 names (zero padding kept); ``{a,b}`` lists; nesting works."""
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    depth, cuts = 0, []
    for i in range(start, len(pattern)):
        c = pattern[i]
        depth += (c == "{") - (c == "}")
        if c == "," and depth == 1:
            cuts.append(i)
        if depth == 0:
            break
    else:
        raise ValueError(f"unbalanced braces in shard pattern {pattern!r}")
    head, body, tail = pattern[:start], pattern[start + 1:i], pattern[i + 1:]
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if rng:
        lo, hi = rng.groups()
        width = len(lo) if lo.startswith("0") or len(lo) == len(hi) else 0
        parts = [str(n).zfill(width) for n in range(int(lo), int(hi) + 1)]
    else:
        bounds = [start, *cuts, i]
        parts = [pattern[a + 1:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    return [name for part in parts for name in expand_braces(head + part + tail)]


def is_shard_source(source: str | Path) -> bool:
    """Whether ``data.source`` names shards: a ``.tar`` file or pattern, a ``pipe:`` command, a URL,
    a manifest, or a folder holding ``.tar`` files (or a manifest) and no videos."""
    s = str(source)
    if s.startswith("pipe:") or "://" in s or re.search(r"\.tar(\}|$|\s)", s) or "{" in s:
        return True
    p = Path(s)
    if p.is_file():
        return p.name == MANIFEST or (p.suffix == ".json" and _looks_like_manifest(p))
    return p.is_dir() and ((p / MANIFEST).is_file() or any(p.glob("*.tar")))


def _looks_like_manifest(p: Path) -> bool:
    try:
        return isinstance(data := json.loads(p.read_text()), dict) and "shards" in data
    except (OSError, ValueError):
        return False


@dataclass
class ShardSet:
    """Shards in manifest order with their sample counts, and the class names (may be None)."""

    urls: list[str]
    counts: list[int]
    classes: list[str] | None = None

    @property
    def offsets(self) -> list[int]:
        out, total = [], 0
        for c in self.counts:
            out.append(total)
            total += c
        return out

    @property
    def num_samples(self) -> int:
        return sum(self.counts)


def resolve_shards(source: str | Path) -> ShardSet:
    """Shard urls and counts from a manifest, a folder, a brace pattern, one tar, ``pipe:`` or a URL.
    Without a manifest the samples are counted by reading the tar headers once (local files: seeks
    only; ``pipe:`` and URLs: a full read); ``maest shard --index`` writes a manifest for such shards."""
    s = str(source)
    p = Path(s)
    if not is_remote(s) and p.is_dir():
        if (p / MANIFEST).is_file():
            return read_manifest(p / MANIFEST)
        urls = sorted(str(f) for f in p.glob("*.tar"))
        if not urls:
            raise FileNotFoundError(f"no .tar shards or {MANIFEST} in {p}; write shards with `maest shard`")
    elif not is_remote(s) and p.suffix == ".json":
        return read_manifest(p)
    else:
        urls = expand_braces(s)
        missing = [u for u in urls if not is_remote(u) and not Path(u).is_file()]
        if missing:
            raise FileNotFoundError(f"shard {missing[0]} does not exist ({len(missing)} of {len(urls)} "
                                    f"missing from {s})")
    log.info("no %s for %d shard(s): counting their samples (write one with `maest shard --index`)",
             MANIFEST, len(urls))
    return ShardSet(urls, [count_samples(u) for u in urls])


def read_manifest(path: str | Path) -> ShardSet:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"shard manifest {p} does not exist")
    try:
        data = json.loads(p.read_text())
        shards = data["shards"]
        urls = [sh["url"] for sh in shards]
        counts = [int(sh["count"]) for sh in shards]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{p} is not a shard manifest (expected {{'shards': [{{'url', 'count'}}, ...]}}): "
                         f"{type(e).__name__}: {e}") from None
    urls = [u if is_remote(u) or Path(u).is_absolute() else str(p.parent / u) for u in urls]
    if not urls or sum(counts) == 0:
        raise ValueError(f"shard manifest {p} lists no samples")
    return ShardSet(urls, counts, data.get("classes"))


# -- one shard's samples -----------------------------------------------------------------------------
class _Stream:
    """A readable binary stream of one shard: a local file, a ``pipe:`` command's stdout, or fsspec."""

    def __init__(self, url: str) -> None:
        self.url, self.proc = url, None
        if url.startswith("pipe:"):
            self.err = tempfile.TemporaryFile()  # not a pipe: a chatty command must not block on it
            self.proc = subprocess.Popen(url[5:], shell=True, stdout=subprocess.PIPE, stderr=self.err)
            self.file: BinaryIO = self.proc.stdout  # type: ignore[assignment]
            self.seekable = False
        elif "://" in url and not url.startswith("file://"):
            try:
                import fsspec
            except ImportError:
                raise RuntimeError(f"reading {url} needs fsspec and its protocol package (pip install fsspec "
                                   "s3fs / gcsfs / ...); or use a pipe: command") from None
            self.file = fsspec.open(url, "rb").open()
            self.seekable = False
        else:
            self.file = open(url.removeprefix("file://"), "rb")  # noqa: SIM115
            self.seekable = True

    def close(self, finished: bool) -> None:
        self.file.close()
        if self.proc is not None:
            code = self.proc.wait()
            self.err.seek(0)
            err = self.err.read().decode(errors="replace").strip()
            self.err.close()
            if finished and code != 0:
                raise RuntimeError(f"shard command {self.url!r} failed with exit code {code}: {err[:300]}")


def _split_name(name: str) -> tuple[str, str]:
    """WebDataset's rule: key = the path up to the first dot of the file name; the rest, lowercased."""
    d, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{d}/{stem}" if d else stem), ext.lower()


def iter_shard(url: str, want: set[int] | None = None, stop: int | None = None
               ) -> Iterator[tuple[int, str, dict[str, bytes] | None]]:
    """(position, key, {ext: bytes}) for each sample of a shard; a sample whose position is not in
    ``want`` comes with None and its data is skipped, not read (seeked over in local files).
    Stops after position ``stop - 1``.

    Raises:
        tarfile.ReadError: the shard is not a tar or is cut off (the caller counts what is missing).
    """
    stream = _Stream(url)
    finished = False
    try:
        tf = tarfile.open(fileobj=stream.file, mode="r:" if stream.seekable else "r|")
        pos, key, sample = -1, None, None
        while True:
            info = tf.next()
            if info is None:
                break
            if not info.isfile():
                continue
            k, ext = _split_name(info.name)
            if k != key:
                if key is not None:
                    yield pos, key, sample
                pos, key = pos + 1, k
                if stop is not None and pos >= stop:
                    return
                sample = {} if want is None or pos in want else None
            if sample is not None:
                sample[ext] = tf.extractfile(info).read()  # type: ignore[union-attr]
        if key is not None and (stop is None or pos < stop):
            yield pos, key, sample
        finished = True
    finally:
        stream.close(finished)


def count_samples(url: str) -> int:
    try:
        return sum(1 for _ in iter_shard(url, want=set()))
    except (tarfile.TarError, OSError) as e:
        raise ValueError(f"cannot read shard {url}: {type(e).__name__}: {e}") from None


def sample_label(sample: dict[str, bytes]) -> int:
    """The json's ``label``, else the ``cls`` member, else -1 (unlabelled, e.g. video2dataset)."""
    if "json" in sample:
        try:
            meta = json.loads(sample["json"])
            if isinstance(meta, dict) and isinstance(meta.get("label"), int):
                return meta["label"]
        except ValueError:
            pass
    if "cls" in sample:
        try:
            return int(sample["cls"].decode().strip())
        except ValueError:
            pass
    return -1
