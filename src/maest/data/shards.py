"""Sharded video datasets in the WebDataset format: ``maest shard`` writes them, :class:`ShardDataset`
streams them into training.

A shard is a plain tar file. Each sample is a run of consecutive members sharing a key (the file name
up to its first dot): the original encoded video (``<key>.mp4``, never re-encoded), ``<key>.json``
(label, path, duration, fps, width, height, class), ``<key>.cls`` (the integer label) and
``<key>.txt`` (the class name). Shards written by other tools in this layout read the same way; for
video2dataset's ``mp4`` + ``json`` + ``txt`` (a caption) the label is -1 unless the json has one.
``manifest.json`` next to the shards lists them with their sample counts and the label map.

The reader is the standard library's ``tarfile`` rather than the ``webdataset`` package: the split
below needs to start reading in the middle of a shard and to know each sample's position, which is
what makes bit-exact resume possible, and per-sample tar overhead (tens of microseconds) is nothing
next to decoding a video (tens of milliseconds), so a library would buy no speed.

How a run reads shards (:meth:`ShardDataset.plan`, set by :func:`maest.data.loader.build_run_loader`):

- epoch e orders the shards by a permutation seeded by (seed, e) and concatenates their samples;
  rank r takes the contiguous positions ``[r * ceil(N / world), ... + per_epoch)`` (wrapping to the
  start to pad, as ``DistributedSampler`` pads), so ranks are disjoint and any shard count works;
- the DataLoader takes batch g of the run from worker g mod K, so a rank's batches j = p, p + K, ...
  of an epoch form *part* p, a contiguous stretch of the rank's positions; each worker reads only the
  part it serves, shuffled by a buffer of ``shuffle_buffer`` samples seeded by (seed, e, rank, part);
- every sample keeps a stable index (its shard's offset in the manifest + its position in the shard),
  which seeds its augmentation by (seed, epoch, index) and keys its masking noise;
- resuming at micro-batch m re-reads (never decodes) the samples of the part before m and continues
  with the same sample, the same augmentation and the same substitutes for broken samples: a resumed
  run is bit-identical to an uninterrupted one with the same ``world`` size and ``num_workers``
  (the order of an epoch depends on both; a different worker count reads every sample exactly once
  per epoch too, in another order).

A sample that cannot be decoded is logged once, counted in ``skipped`` and replaced by another sample
read but not yet used by this worker (from the shuffle buffer), as a broken file is replaced by
another video.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from maest.runtime import dist_rank_world, mix_seed

log = logging.getLogger("maest.data")
MANIFEST = "manifest.json"
FORMAT = "maest-shards/1"
VIDEO_KEYS = ("mp4", "webm", "mkv", "avi", "mov", "m4v", "mpg", "mpeg", "flv", "ogv")
DEFAULT_SHARD_BYTES = 1_000_000_000


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


# -- the streaming dataset ---------------------------------------------------------------------------
@dataclass
class _Plan:
    seed: int = 0
    rank: int = 0
    world: int = 1
    batch_size: int = 1
    per_epoch: int = 0
    epochs: int = 1
    first_epoch: int = 0
    start: int = 0
    num_workers: int = 0


def buffer_order(n: int, size: int, gen: torch.Generator) -> list[int]:
    """The order in which a shuffle buffer of ``size`` emits a stream of ``n`` items (fill the buffer,
    then for each new item emit a random buffered one and put the new one in its place; drain
    shuffled). Only positions are shuffled, so a resumed reader can skip samples without their bytes."""
    if size <= 1 or n <= 1:
        return list(range(n))
    buf, out = [], []
    for i in range(n):
        if len(buf) < size:
            buf.append(i)
            continue
        j = int(torch.randint(len(buf), (), generator=gen))
        out.append(buf[j])
        buf[j] = i
    rest = torch.randperm(len(buf), generator=gen).tolist()
    return out + [buf[j] for j in rest]


class ShardDataset(IterableDataset):
    """Training clips streamed from shards; items as :class:`~maest.data.datasets.VideoClipDataset`'s.

    Args:
        source: a manifest, a folder of shards, a brace pattern, a tar, ``pipe:CMD`` or an fsspec URL.
        spec: a :class:`~maest.data.datasets.ClipSpec` in a training mode ("pretrain" or "finetune").
            Its ``shuffle_buffer`` is how many samples (encoded bytes) a worker holds for the shuffle.
        clips: (open video, label, index) -> item: the file path's clip sampling and augmentation
            (``VideoClipDataset([], spec).clips``; :func:`~maest.data.datasets.dataset_from_source`
            passes it, so this module does not import the datasets module above it).
    """

    def __init__(self, source: str | Path, spec: Any, clips: Callable[[Any, int, int], dict[str, Any]]) -> None:
        if spec.mode not in ("pretrain", "finetune"):
            raise ValueError(f"shards stream training data; mode {spec.mode!r} needs a video list or folder "
                             "(evaluation reads every video once, in order)")
        self.source = str(source)
        self.shards = resolve_shards(source)
        self.classes = self.shards.classes
        self.spec = spec
        self.shuffle_buffer = spec.shuffle_buffer
        self._clips = clips
        self._plan: _Plan | None = None
        self.epoch = 0

    def __len__(self) -> int:
        return self.shards.num_samples

    def set_epoch(self, epoch: int) -> None:
        """The epoch read when no :meth:`plan` is set (one pass, batch size 1)."""
        self.epoch = epoch

    def plan(self, *, seed: int, rank: int, world: int, batch_size: int, per_epoch: int, epochs: int,
             first_epoch: int = 0, start: int = 0, num_workers: int = 0) -> None:
        """What to stream: ``per_epoch`` samples per epoch for ``rank`` of ``world`` in batches of
        ``batch_size``, epochs ``first_epoch`` to ``epochs - 1``, starting at sample ``start`` of the
        first, served by ``num_workers`` DataLoader workers (0: the main process)."""
        c = -(-len(self) // world)
        if per_epoch > c or per_epoch % batch_size or start % batch_size:
            raise ValueError(f"per_epoch={per_epoch} / start={start} must be multiples of batch_size={batch_size} "
                             f"and at most {c} (samples per rank)")
        self._plan = _Plan(seed, rank, world, batch_size, per_epoch, epochs, first_epoch, start, num_workers)

    # which samples a worker reads
    def _current_plan(self) -> _Plan:
        if self._plan is not None:
            return self._plan
        rank, world = dist_rank_world()
        info = get_worker_info()
        seed = self.spec.seed if self.spec.seed is not None else 0
        return _Plan(seed, rank, world, 1, -(-len(self) // world), self.epoch + 1, self.epoch, 0,
                     info.num_workers if info else 0)

    def epoch_positions(self, seed: int, epoch: int) -> list[tuple[int, int]]:
        """(shard, first position in the epoch's concatenation) in the epoch's shard order."""
        order = torch.randperm(len(self.shards.urls), generator=torch.Generator().manual_seed(
            mix_seed(seed, epoch, 0x5A4D))).tolist()
        out, pos = [], 0
        for s in order:
            out.append((s, pos))
            pos += self.shards.counts[s]
        return out

    def part_range(self, plan: _Plan, part: int) -> tuple[int, int]:
        """[lo, hi) positions (mod N) in the epoch's concatenation that ``part`` of this rank reads."""
        k = max(plan.num_workers, 1)
        batches = plan.per_epoch // plan.batch_size
        before = sum(len(range(q, batches, k)) for q in range(part))
        lo = plan.rank * -(-len(self) // plan.world) + before * plan.batch_size
        return lo, lo + len(range(part, batches, k)) * plan.batch_size

    def segments(self, plan: _Plan, epoch: int, part: int) -> list[tuple[int, int, int, int]]:
        """(shard, first, end, part offset): the shard positions a part reads, in order."""
        n = len(self)
        lo, hi = self.part_range(plan, part)
        layout = self.epoch_positions(plan.seed, epoch)
        segs, done = [], 0
        while lo + done < hi:
            g = (lo + done) % n
            for s, first in layout:
                if first <= g < first + self.shards.counts[s]:
                    q = g - first
                    take = min(self.shards.counts[s] - q, hi - lo - done)
                    segs.append((s, q, q + take, done))
                    done += take
                    break
        return segs

    def __iter__(self) -> Iterator[dict[str, Any]]:
        plan = self._current_plan()
        info = get_worker_info()
        k = max(plan.num_workers, 1)
        w = info.id if info is not None else 0
        if info is not None and info.num_workers != k:
            raise RuntimeError(f"shard plan is for {k} workers but the DataLoader has {info.num_workers}")
        batches = plan.per_epoch // plan.batch_size
        offset = 0  # batches of the run before this epoch
        for epoch in range(plan.first_epoch, plan.epochs):
            first = plan.start // plan.batch_size if epoch == plan.first_epoch else 0
            if first < batches:
                part = (w - offset + first) % k  # the run's batch g comes from worker g mod k
                skip = len(range(part, first, k)) * plan.batch_size
                yield from self._part(plan, epoch, part, skip)
            offset += batches - first

    def _part(self, plan: _Plan, epoch: int, part: int, skip: int) -> Iterator[dict[str, Any]]:
        segs = self.segments(plan, epoch, part)
        size = sum(end - q for _, q, end, _ in segs)
        gen = torch.Generator().manual_seed(mix_seed(plan.seed, epoch, plan.rank, part, 0xB0F))
        order = buffer_order(size, self.shuffle_buffer, gen)
        needed = order[skip:]
        want = set(needed)
        pending: dict[int, tuple[int, str, dict[str, bytes]]] = {}
        out = 0
        for pos, index, name, sample in self._read(segs, want):
            pending[pos] = (index, name, sample)
            while out < len(needed) and needed[out] in pending:
                index, name, sample = pending.pop(needed[out])
                out += 1
                yield self._item(plan.seed, epoch, index, name, sample, pending, segs)

    def _read(self, segs: list[tuple[int, int, int, int]], want: set[int]
              ) -> Iterator[tuple[int, int, str, dict[str, bytes]]]:
        """(part position, stable index, name, sample) of the wanted samples; a sample missing from a
        cut-off or unreadable shard comes as an empty sample (decoded as broken, then replaced)."""
        for s, q0, q1, base in segs:
            url = self.shards.urls[s]
            wanted = {q0 + p - base for p in want if base <= p < base + q1 - q0}
            if not wanted:
                continue
            seen = set()
            try:
                for q, key, sample in iter_shard(url, wanted, stop=q1):
                    if q in wanted:
                        seen.add(q)
                        yield base + q - q0, self.shards.offsets[s] + q, f"{url}:{key}", sample  # type: ignore[misc]
            except (tarfile.TarError, OSError) as e:
                log.warning("shard %s is unreadable past sample %d (%s: %s)", url, max(seen, default=-1),
                            type(e).__name__, e)
            for q in sorted(wanted - seen):  # the shard ended early or broke: count these as broken
                yield base + q - q0, self.shards.offsets[s] + q, f"{url}:#{q}", {}

    def _item(self, seed: int, epoch: int, index: int, name: str, sample: dict[str, bytes],
              pending: dict[int, tuple[int, str, dict[str, bytes]]], segs: list) -> dict[str, Any]:
        from maest.data.decode import VideoDecodeError

        s = mix_seed(seed, epoch, index)  # as SeededItems: augmentation follows (seed, epoch, video)
        random.seed(s)
        np.random.seed(s % 2**32)
        torch.manual_seed(s)
        skipped: list[str] = []
        for _ in range(self.spec.max_retries + 1):
            try:
                item = self._decode(index, name, sample)
                item["skipped"] = skipped
                return item
            except VideoDecodeError as e:
                _warn_once(e)
                skipped.append(e.path)
            # another sample this worker has read but not used yet (the shuffle buffer), else re-read one
            if pending:
                keys = sorted(pending)
                index, name, sample = pending[keys[int(torch.randint(len(keys), ()))]]
            else:
                index, name, sample = self._reread(segs, int(torch.randint(sum(e - q for _, q, e, _ in segs), ())))
        raise RuntimeError(
            f"{self.spec.max_retries + 1} samples in a row could not be decoded (tried: {', '.join(skipped[:10])}); "
            "check the shards and the video backend"
        )

    def _reread(self, segs: list, pos: int) -> tuple[int, str, dict[str, bytes]]:
        for _, index, name, sample in self._read(segs, {pos}):
            return index, name, sample
        return -1, "missing", {}

    def _decode(self, index: int, name: str, sample: dict[str, bytes]) -> dict[str, Any]:
        from maest.data.decode import VideoDecodeError, open_video

        video_key = next((k for k in VIDEO_KEYS if k in sample), None)
        if video_key is None:
            raise VideoDecodeError(name, "no video in the sample" if sample else "missing from its shard")
        label = sample_label(sample)
        video = open_video(name, self.spec.backend, data=sample[video_key], device=self.spec.decode_device)
        return self._clips(video, label, index)


_warned: set[str] = set()


def _warn_once(err: Any) -> None:
    if err.path not in _warned:
        _warned.add(err.path)
        log.warning("skipping unreadable sample %s (%s)", err.path, err.reason)


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


# -- writing -----------------------------------------------------------------------------------------
def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644  # reproducible shards
    tf.addfile(info, io.BytesIO(data))


def write_shards(items: list[tuple[str, int]], out_dir: str | Path, classes: list[str] | None = None,
                 prefix: str = "train", shard_bytes: int = DEFAULT_SHARD_BYTES, overwrite: bool = False,
                 progress: bool = True, backend: str = "auto") -> dict[str, Any]:
    """Pack videos into ``<prefix>-000000.tar``... of about ``shard_bytes`` each plus ``manifest.json``.

    Each video is probed (frames, fps, size); one that cannot be opened is listed under ``skipped`` in
    the manifest and left out. Shards and the manifest are written to temporary names and renamed.

    Returns:
        the manifest (also written to ``out_dir/manifest.json``).
    """
    from maest.data.decode import VideoDecodeError, open_video

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"shard output {out} is a file; pass a folder")
    out.mkdir(parents=True, exist_ok=True)
    old = sorted(out.glob(f"{prefix}-*.tar")) + ([out / MANIFEST] if (out / MANIFEST).exists() else [])
    if old and not overwrite:
        raise ValueError(f"{out} already holds shards ({old[0].name}, ...); choose another folder or pass --overwrite")
    for f in old:
        f.unlink()
    shards: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    state: dict[str, Any] = {"tf": None, "tmp": None, "count": 0}

    def close_shard() -> None:
        if state["tf"] is None:
            return
        state["tf"].close()
        with open(state["tmp"], "rb+") as f:
            os.fsync(f.fileno())
        final = state["tmp"].with_suffix("")
        os.replace(state["tmp"], final)
        shards.append({"url": final.name, "count": state["count"], "bytes": final.stat().st_size})
        state.update(tf=None, tmp=None, count=0)

    bar = _bar(progress, len(items))
    n = 0
    for path, label in items:
        bar.update(1)
        try:
            video = open_video(path, backend)
            data = Path(path).read_bytes()
        except (VideoDecodeError, OSError) as e:
            skipped.append({"path": str(path), "reason": getattr(e, "reason", str(e))})
            log.warning("skipping unreadable video %s (%s)", path, getattr(e, "reason", e))
            continue
        if state["tf"] is not None and state["tf"].fileobj.tell() + len(data) > shard_bytes:
            close_shard()
        if state["tf"] is None:
            state["tmp"] = out / f"{prefix}-{len(shards):06d}.tar.tmp"
            state["tf"] = tarfile.open(state["tmp"], "w", format=tarfile.USTAR_FORMAT)
        key = f"{n:09d}"
        name = classes[label] if classes and 0 <= label < len(classes) else None
        meta = {"label": label, "path": str(path), "duration": video.num_frames / video.fps if video.fps else None,
                "fps": video.fps, "num_frames": video.num_frames, "width": video.width, "height": video.height,
                "class": name}
        ext = Path(path).suffix.lower().lstrip(".") or "mp4"
        _add(state["tf"], f"{key}.{ext}", data)
        _add(state["tf"], f"{key}.json", json.dumps(meta).encode())
        if label >= 0:
            _add(state["tf"], f"{key}.cls", str(label).encode())
        if name is not None:
            _add(state["tf"], f"{key}.txt", name.encode())
        state["count"] += 1
        n += 1
    close_shard()
    bar.close()
    if not shards:
        raise ValueError(f"none of the {len(items)} videos could be read; nothing written to {out}")
    manifest = {"format": FORMAT, "num_samples": n, "shards": shards, "classes": classes,
                "label_map": {c: i for i, c in enumerate(classes)} if classes else None, "skipped": skipped}
    write_manifest(manifest, out / MANIFEST)
    return manifest


def index_shards(source: str, out: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """A manifest for existing shards (e.g. video2dataset's), counting their samples once."""
    target = Path(out)
    if target.exists() and not overwrite:
        raise ValueError(f"{target} exists; pass --overwrite to replace it")
    shards = resolve_shards(source)
    listed = [{"url": u, "count": c} for u, c in zip(shards.urls, shards.counts, strict=True)]
    manifest = {"format": FORMAT, "num_samples": shards.num_samples, "classes": None, "label_map": None,
                "shards": listed, "skipped": []}
    write_manifest(manifest, target)
    return manifest


def write_manifest(manifest: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, path)


class _NoBar:
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


def _bar(enabled: bool, total: int):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="shard", unit="video", dynamic_ncols=True)
