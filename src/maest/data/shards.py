"""Sharded video datasets in the WebDataset format streamed into training: :class:`ShardDataset`.
The shard layout, sources and manifests are in :mod:`maest.data.shard_files`; ``maest shard``
writes shards with :mod:`maest.data.shard_writer`.

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

import logging
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch.utils.data import IterableDataset, get_worker_info

from maest.data import rng
from maest.data.decode import VideoDecodeError, open_video, warn_once
from maest.data.shard_files import VIDEO_KEYS, ShardSet, iter_shard, resolve_shards, sample_label
from maest.runtime import dist_rank_world, mix_seed

log = logging.getLogger("maest.data")
Sample = tuple[int, str, dict[str, bytes]]  # (stable index, name for messages, {ext: bytes})


# -- which positions a worker reads ------------------------------------------------------------------
class Segment(NamedTuple):
    """Positions [first, end) of shard number ``shard``, read from offset ``base`` of a part."""

    shard: int
    first: int
    end: int
    base: int


def _length(segs: list[Segment]) -> int:
    return sum(s.end - s.first for s in segs)


def epoch_layout(counts: list[int], seed: int, epoch: int) -> list[tuple[int, int]]:
    """(shard, first position in the epoch's concatenation) in the epoch's shard order."""
    order = torch.randperm(len(counts), generator=torch.Generator().manual_seed(
        mix_seed(seed, epoch, 0x5A4D))).tolist()
    out, pos = [], 0
    for s in order:
        out.append((s, pos))
        pos += counts[s]
    return out


@dataclass
class _Plan:
    """What one rank streams (see :meth:`ShardDataset.plan`), and which shard positions each part reads."""

    seed: int
    rank: int
    world: int
    batch_size: int
    per_epoch: int
    epochs: int
    first_epoch: int
    start: int
    num_workers: int

    @property
    def workers(self) -> int:
        return max(self.num_workers, 1)

    def parts(self, worker: int) -> Iterator[tuple[int, int, int]]:
        """(epoch, part, samples of the part to skip) that ``worker`` serves, in order; samples are
        skipped in the first epoch of a resumed run."""
        k, batches = self.workers, self.per_epoch // self.batch_size
        offset = 0  # batches of the run before this epoch
        for epoch in range(self.first_epoch, self.epochs):
            first = self.start // self.batch_size if epoch == self.first_epoch else 0
            if first < batches:
                part = (worker - offset + first) % k  # the run's batch g comes from worker g mod k
                yield epoch, part, len(range(part, first, k)) * self.batch_size
            offset += batches - first

    def part_range(self, n: int, part: int) -> tuple[int, int]:
        """[lo, hi) positions (mod ``n`` samples) in the epoch's concatenation that ``part`` of this rank reads."""
        k, batches = self.workers, self.per_epoch // self.batch_size
        before = sum(len(range(q, batches, k)) for q in range(part))
        lo = self.rank * -(-n // self.world) + before * self.batch_size
        return lo, lo + len(range(part, batches, k)) * self.batch_size

    def segments(self, counts: list[int], epoch: int, part: int) -> list[Segment]:
        """The shard positions ``part`` reads in ``epoch``, in order, for shards of ``counts`` samples."""
        n = sum(counts)
        lo, hi = self.part_range(n, part)
        layout = epoch_layout(counts, self.seed, epoch)
        segs, done = [], 0
        while lo + done < hi:
            g = (lo + done) % n
            for s, first in layout:
                if first <= g < first + counts[s]:
                    q = g - first
                    take = min(counts[s] - q, hi - lo - done)
                    segs.append(Segment(s, q, q + take, done))
                    done += take
                    break
        return segs


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


def read_segments(shards: ShardSet, segs: list[Segment], want: set[int]
                  ) -> Iterator[tuple[int, int, str, dict[str, bytes]]]:
    """(part position, stable index, name, sample) of the wanted part positions of ``segs``; a sample
    missing from a cut-off or unreadable shard comes as an empty sample (decoded as broken, then replaced)."""
    offsets = shards.offsets
    for s, q0, q1, base in segs:
        url = shards.urls[s]
        wanted = {q0 + p - base for p in want if base <= p < base + q1 - q0}
        if not wanted:
            continue
        seen = set()
        try:
            for q, key, sample in iter_shard(url, wanted, stop=q1):
                if q in wanted:
                    seen.add(q)
                    yield base + q - q0, offsets[s] + q, f"{url}:{key}", sample  # type: ignore[misc]
        except (tarfile.TarError, OSError) as e:
            log.warning("shard %s is unreadable past sample %d (%s: %s)", url, max(seen, default=-1),
                        type(e).__name__, e)
        for q in sorted(wanted - seen):  # the shard ended early or broke: count these as broken
            yield base + q - q0, offsets[s] + q, f"{url}:#{q}", {}


# -- the streaming dataset ---------------------------------------------------------------------------
class ShardDataset(IterableDataset):
    """Training clips streamed from shards; items as :class:`~maest.data.datasets.VideoClipDataset`'s.

    Args:
        source: a manifest, a folder of shards, a brace pattern, a tar, ``pipe:CMD`` or an fsspec URL.
        spec: a :class:`~maest.data.datasets.ClipSpec` in a training mode ("pretrain" or "finetune").
            Its ``shuffle_buffer`` is how many samples (encoded bytes) a worker holds for the shuffle.
        clips: (open video, label, index) -> item: the file path's clip sampling and augmentation
            (``VideoClipDataset([], spec).clips``; :func:`~maest.data.datasets.dataset_from_source`
            passes it, so this module does not import the datasets module above it).
        allow_pipe: run ``pipe:`` commands (see :func:`~maest.data.shard_files.resolve_shards`).
        num_classes: a classifier's class count: every sample's label must be in [0, num_classes)
            (a sample outside it stops the run, naming the shard and the key).
    """

    def __init__(self, source: str | Path, spec: Any, clips: Callable[[Any, int, int], dict[str, Any]],
                 allow_pipe: bool = False, num_classes: int | None = None) -> None:
        if spec.mode not in ("pretrain", "finetune"):
            raise ValueError(f"shards stream training data; mode {spec.mode!r} needs a video list or folder "
                             "(evaluation reads every video once, in order)")
        self.source = str(source)
        self.shards = resolve_shards(source, allow_pipe)
        self.num_classes = num_classes
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

    def _current_plan(self) -> _Plan:
        if self._plan is not None:
            return self._plan
        rank, world = dist_rank_world()
        info = get_worker_info()
        seed = self.spec.seed if self.spec.seed is not None else 0
        return _Plan(seed, rank, world, 1, -(-len(self) // world), self.epoch + 1, self.epoch, 0,
                     info.num_workers if info else 0)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        plan = self._current_plan()
        info = get_worker_info()
        if info is not None and info.num_workers != plan.workers:
            raise RuntimeError(f"shard plan is for {plan.workers} workers but the DataLoader has {info.num_workers}")
        for epoch, part, skip in plan.parts(info.id if info is not None else 0):
            yield from self._part(plan, epoch, part, skip)

    def _part(self, plan: _Plan, epoch: int, part: int, skip: int) -> Iterator[dict[str, Any]]:
        """The items of one part of an epoch in shuffle-buffer order, less the first ``skip`` (not read)."""
        segs = plan.segments(self.shards.counts, epoch, part)
        gen = torch.Generator().manual_seed(mix_seed(plan.seed, epoch, plan.rank, part, 0xB0F))
        needed = buffer_order(_length(segs), self.shuffle_buffer, gen)[skip:]
        pending: dict[int, Sample] = {}  # read, not yet used: by part position
        out = 0
        for pos, index, name, sample in read_segments(self.shards, segs, set(needed)):
            pending[pos] = (index, name, sample)
            while out < len(needed) and needed[out] in pending:
                chosen = pending.pop(needed[out])
                out += 1
                yield self._item(plan.seed, epoch, chosen, pending, segs)

    def _item(self, seed: int, epoch: int, chosen: Sample, pending: dict[int, Sample],
              segs: list[Segment]) -> dict[str, Any]:
        """The item of a sample, seeded by (seed, epoch, its index) as SeededItems seeds a video's; a
        sample that cannot be decoded is replaced (:meth:`_substitute`), ``max_retries`` times at most."""
        s = mix_seed(seed, epoch, chosen[0])
        rng.seed_host(s)
        skipped: list[str] = []
        for _ in range(self.spec.max_retries + 1):
            try:
                item = self._decode(*chosen)
                item["skipped"] = skipped
                return item
            except VideoDecodeError as e:
                warn_once(e, "sample")
                skipped.append(e.path)
            chosen = self._substitute(pending, segs)
        raise RuntimeError(
            f"{self.spec.max_retries + 1} samples in a row could not be decoded (tried: {', '.join(skipped[:10])}); "
            "check the shards and the video backend"
        )

    def _substitute(self, pending: dict[int, Sample], segs: list[Segment]) -> Sample:
        """Another sample this worker has read but not used yet (the shuffle buffer), else one re-read."""
        if pending:
            keys = sorted(pending)
            return pending[keys[int(torch.randint(len(keys), (), generator=rng.generator()))]]
        pick = int(torch.randint(_length(segs), (), generator=rng.generator()))
        for _, index, name, sample in read_segments(self.shards, segs, {pick}):
            return index, name, sample
        return -1, "missing", {}

    def _decode(self, index: int, name: str, sample: dict[str, bytes]) -> dict[str, Any]:
        video_key = next((k for k in VIDEO_KEYS if k in sample), None)
        if video_key is None:
            raise VideoDecodeError(name, "no video in the sample" if sample else "missing from its shard")
        label = self._label(name, sample)
        video = open_video(name, self.spec.backend, data=sample[video_key], device=self.spec.decode_device,
                           motion_vectors=self.spec.motion == "codec")
        return self._clips(video, label, index)

    def _label(self, name: str, sample: dict[str, bytes]) -> int:
        """The sample's label, checked: in [0, num_classes) for a classifier (the manifest's class count when
        none was given); one that does not fit in 64 bits is -1 in pre-training (labels are unused there)
        and an error otherwise."""
        label, n = sample_label(sample), self.num_classes
        if n is None and self.spec.mode == "finetune" and self.classes:
            n = len(self.classes)
        if n is not None and not 0 <= label < n:
            raise ValueError(f"shard sample {name}: label {label} is outside [0, {n}) for model.num_classes={n}; "
                             "fix the sample's .cls / .json label or set model.num_classes")
        if not -(2**63) <= label < 2**63:
            if self.spec.mode == "pretrain":
                return -1
            raise ValueError(f"shard sample {name}: label {label} does not fit in 64 bits; fix its .cls / .json")
        return label
