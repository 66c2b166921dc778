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

import itertools
import json
import logging
import os
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
# ``pipe:`` commands run from a file (a manifest) or a config file only with this opt-in (or allow_pipe)
PIPE_ENV = "MAEST_ALLOW_PIPE"
PIPE_OPT_IN = f"--set data.allow_pipe=true (or {PIPE_ENV}=1)"
MAX_PATTERN_SHARDS = 100_000  # names one brace pattern may stand for
MAX_REMOTE_COUNT = 1_000_000  # samples a manifest may claim for one pipe: / URL shard (videos: far fewer)
TAR_BLOCK = 512  # every tar member starts with a header block: a shard of N bytes holds < N / 512 samples


class PipeRefused(ValueError):
    """A ``pipe:`` shell command came from where maest does not run commands by default."""


# -- sources -----------------------------------------------------------------------------------------
def is_remote(url: str) -> bool:
    return url.startswith("pipe:") or "://" in url


def pipe_allowed(allow_pipe: bool = False) -> bool:
    """Whether ``pipe:`` commands may run: ``allow_pipe`` (a flag the user typed) or ``$MAEST_ALLOW_PIPE``."""
    return allow_pipe or os.environ.get(PIPE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def check_commands(urls: list[str], allow_pipe: bool, where: str) -> None:
    """Refuse ``pipe:`` commands among ``urls`` (read from ``where``) unless :func:`pipe_allowed`."""
    commands = [u for u in urls if u.startswith("pipe:")]
    if commands and not pipe_allowed(allow_pipe):
        raise PipeRefused(
            f"refusing to run the shell command {commands[0][:80]!r} from {where}; maest runs pipe: commands only "
            f"from a data source typed on the command line (DATA, or --set data.source=pipe:...), or with "
            f"{PIPE_OPT_IN} if you trust {where}")


def expand_braces(pattern: str, limit: int = MAX_PATTERN_SHARDS) -> list[str]:
    """``train-{000000..000003}.tar`` -> 4 names (zero padding kept); ``{a,b}`` lists; nesting works.
    A pattern naming more than ``limit`` shards is refused before the names are made."""
    names = list(itertools.islice(_braces(pattern), limit + 1))
    if len(names) > limit:
        raise ValueError(f"shard pattern {pattern!r} names more than {limit} shards; list the shards in a "
                         "manifest (maest shard --index) or narrow the range")
    return names


def _braces(pattern: str) -> Iterator[str]:
    """The names of a brace pattern, made lazily (a range is never listed in memory)."""
    start = pattern.find("{")
    if start < 0:
        yield pattern
        return
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
        parts: Iterator[str] = (str(n).zfill(width) for n in range(int(lo), int(hi) + 1))
    else:
        bounds = [start, *cuts, i]
        parts = iter([pattern[a + 1:b] for a, b in zip(bounds, bounds[1:], strict=False)])
    for part in parts:
        yield from _braces(head + part + tail)


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


def resolve_shards(source: str | Path, allow_pipe: bool = False) -> ShardSet:
    """Shard urls and counts from a manifest, a folder, a brace pattern, one tar, ``pipe:`` or a URL.
    Without a manifest the samples are counted by reading the tar headers once (local files: seeks
    only; ``pipe:`` and URLs: a full read); ``maest shard --index`` writes a manifest for such shards.

    A ``pipe:`` command runs only with ``allow_pipe`` (the caller typed ``source`` itself, or opted in)
    or ``$MAEST_ALLOW_PIPE``: a manifest found in a downloaded folder never runs one by default."""
    s = str(source)
    p = Path(s)
    if not is_remote(s) and p.is_dir():
        if (p / MANIFEST).is_file():
            return read_manifest(p / MANIFEST, allow_pipe)
        urls = sorted(str(f) for f in p.glob("*.tar"))
        if not urls:
            raise FileNotFoundError(f"no .tar shards or {MANIFEST} in {p}; write shards with `maest shard`")
    elif not is_remote(s) and p.suffix == ".json":
        return read_manifest(p, allow_pipe)
    else:
        urls = expand_braces(s)
        check_commands(urls, allow_pipe, "data.source")
        check_protocols(urls, "data.source")
        missing = [u for u in urls if not is_remote(u) and not Path(u).is_file()]
        if missing:
            raise FileNotFoundError(f"shard {missing[0]} does not exist ({len(missing)} of {len(urls)} "
                                    f"missing from {s})")
    log.info("no %s for %d shard(s): counting their samples (write one with `maest shard --index`)",
             MANIFEST, len(urls))
    return ShardSet(urls, [count_samples(u) for u in urls])


def read_manifest(path: str | Path, allow_pipe: bool = False) -> ShardSet:
    """The shards a manifest lists, each checked before anything is read: its count is a whole number
    no larger than the file can hold, a local file exists, a URL's protocol can be read, and a
    ``pipe:`` command is refused unless ``allow_pipe`` or ``$MAEST_ALLOW_PIPE`` (see :func:`resolve_shards`)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"shard manifest {p} does not exist")
    try:
        data = json.loads(p.read_text())
        shards = data["shards"]
        urls = [sh["url"] for sh in shards]
        counts = [sh["count"] for sh in shards]
        if not all(isinstance(u, str) for u in urls):
            raise TypeError("a shard url is not a string")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{p} is not a shard manifest (expected {{'shards': [{{'url', 'count'}}, ...]}}): "
                         f"{type(e).__name__}: {e}") from None
    urls = [u if is_remote(u) or Path(u).is_absolute() else str(p.parent / u) for u in urls]
    check_commands(urls, allow_pipe, f"shard manifest {p}")
    check_protocols(urls, f"shard manifest {p}")
    for url, count in zip(urls, counts, strict=True):
        _check_count(p, url, count)
    if not urls or sum(counts) == 0:
        raise ValueError(f"shard manifest {p} lists no samples")
    classes = data.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise ValueError(f"{p}: 'classes' must be a list of class names (strings) or null")
    return ShardSet(urls, counts, classes)


def _check_count(manifest: Path, url: str, count: object) -> None:
    """A manifest's sample count for ``url``: a whole number >= 0 that the shard can hold (a local file
    of N bytes holds fewer than N / 512 samples; a pipe: or URL shard at most MAX_REMOTE_COUNT)."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"{manifest}: shard {url} has count {json.dumps(count)[:40]}; a count is the number of "
                         "samples in the shard (a whole number >= 0): rewrite it with `maest shard --index`")
    if is_remote(url) and not url.startswith("file://"):
        if count > MAX_REMOTE_COUNT:
            raise ValueError(f"{manifest}: shard {url} claims {count} samples, more than any video shard holds "
                             f"(at most {MAX_REMOTE_COUNT}); rewrite the manifest with `maest shard --index`")
        return
    local = Path(url.removeprefix("file://"))
    if not local.is_file():
        raise FileNotFoundError(f"shard {local} listed in {manifest} does not exist; restore it or rewrite the "
                                "manifest with `maest shard --index`")
    size = local.stat().st_size
    if count > size // TAR_BLOCK:
        raise ValueError(f"{manifest}: shard {local} claims {count} samples but its {size} bytes hold at most "
                         f"{size // TAR_BLOCK}; rewrite the manifest with `maest shard --index`")


def check_protocols(urls: list[str], where: str) -> None:
    """Refuse URLs (``s3://``, ``http://``, ...) fsspec cannot read here, before a loader worker meets them."""
    protocols = sorted({u.split("://", 1)[0] for u in urls
                        if "://" in u and not u.startswith(("pipe:", "file://"))})
    for proto in protocols:
        try:
            import fsspec

            fsspec.get_filesystem_class(proto)
        except ImportError as e:
            raise RuntimeError(f"{where}: reading {proto}:// shards needs fsspec and its {proto} package "
                               f"({_first_line(e)}); pip install fsspec and the package, or use a pipe: "
                               "command") from None
        except ValueError:
            raise ValueError(f"{where}: {proto}:// is not a protocol fsspec knows; use a local path, a known "
                             "URL scheme or a pipe: command") from None


def _first_line(e: BaseException) -> str:
    return next((line.strip()[:200] for line in str(e).splitlines() if line.strip()), type(e).__name__)


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

                self.file = fsspec.open(url, "rb").open()
            except ImportError as e:
                raise RuntimeError(f"reading {url} needs fsspec and its protocol package ({_first_line(e)}; pip "
                                   "install fsspec s3fs / gcsfs / aiohttp ...); or use a pipe: command") from None
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
    """The json's ``label``, else the ``cls`` member, else -1 (unlabelled, e.g. video2dataset). Any
    integer is returned as written: the dataset checks it against the model's classes."""
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
