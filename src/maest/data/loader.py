"""Batching: a rank-aware, resumable sampler; collation that folds repeated clips into the batch;
and the per-epoch tally of unreadable videos.

Indices carry their epoch (:class:`EpochIndex`), so a worker that outlives an epoch (persistent
workers, or :func:`build_run_loader`'s one iterator for a whole run) seeds each item by (seed, epoch,
video) without being told that the epoch changed.

MAE-ST's repeated sampling (arXiv:2205.09113, §4) decodes a video once and takes r clips from it,
so everything here counts *videos*: a batch of B videos becomes B*r clips after :func:`collate_clips`,
and sharding is by video, keeping a video's r clips on one rank.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, get_worker_info

from maest.data import rng
from maest.data.prefetch import ThreadPrefetch
from maest.runtime import dist_rank_world, mix_seed, seed_host


class EpochIndex(int):
    """A dataset index that remembers the epoch it was drawn for. It compares, hashes and indexes
    as the plain int; datasets read ``epoch_of(index, default)`` to seed augmentation."""

    def __new__(cls, index: int, epoch: int) -> EpochIndex:
        obj = super().__new__(cls, index)
        obj.epoch = epoch
        return obj

    def __reduce__(self):  # pickled to workers with its epoch
        return EpochIndex, (int(self), self.epoch)


def epoch_of(index: int, default: int) -> int:
    """The epoch an index was drawn for (an :class:`EpochIndex`), else ``default``."""
    return getattr(index, "epoch", default)


def epoch_order(
    num_items: int, seed: int, epoch: int, rank: int = 0, world: int = 1, shuffle: bool = True
) -> list[int]:
    """This rank's video order for an epoch: a seeded permutation padded to a multiple of ``world``
    and strided by rank (DistributedSampler's scheme), so ranks see disjoint videos."""
    if shuffle:
        order = torch.randperm(num_items, generator=torch.Generator().manual_seed(mix_seed(seed, epoch))).tolist()
    else:
        order = list(range(num_items))
    per_rank = -(-num_items // world)
    order += order[: per_rank * world - num_items]
    return order[rank::world]


class ShardedSampler(Sampler[int]):
    """Videos for one rank. Each video yields ``repeat`` clips, so a batch of B videos trains on
    B x repeat clips per rank; sharding is by video so repeated clips of one video stay on one rank.
    ``start`` skips the first items of the epoch (exact mid-epoch resume)."""

    def __init__(self, num_items: int, seed: int = 0, rank: int = 0, world: int = 1, shuffle: bool = True) -> None:
        self.num_items, self.seed, self.rank, self.world, self.shuffle = num_items, seed, rank, world, shuffle
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[int]:
        order = epoch_order(self.num_items, self.seed, self.epoch, self.rank, self.world, self.shuffle)
        return iter([EpochIndex(i, self.epoch) for i in order[self.start:]])

    def __len__(self) -> int:
        return -(-self.num_items // self.world) - self.start


class RepeatAwareDistributedSampler(ShardedSampler):
    """:class:`ShardedSampler` that reads rank and world size from ``torch.distributed`` when they
    are not given. Deterministic in (seed, epoch); call ``set_epoch`` before each epoch."""

    def __init__(self, data: int | Sized, seed: int = 0, rank: int | None = None, world: int | None = None,
                 shuffle: bool = True) -> None:
        d_rank, d_world = dist_rank_world()
        rank, world = d_rank if rank is None else rank, d_world if world is None else world
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside world size {world}")
        super().__init__(data if isinstance(data, int) else len(data), seed, rank, world, shuffle)


class RunSampler(Sampler[int]):
    """A whole run's video order for one rank: each epoch from ``first_epoch`` to ``epochs - 1``
    contributes :func:`epoch_order` cut to ``per_epoch`` items (a multiple of the batch size, so no
    batch straddles two epochs), the first epoch starting at item ``start`` (exact mid-epoch resume).
    One DataLoader iterator then serves the whole run: workers start once and keep prefetching
    across epoch boundaries. Items are :class:`EpochIndex`, so augmentation follows (seed, epoch, video)."""

    def __init__(self, num_items: int, seed: int, rank: int, world: int, per_epoch: int, epochs: int,
                 first_epoch: int = 0, start: int = 0, shuffle: bool = True) -> None:
        if per_epoch > -(-num_items // world):
            raise ValueError(f"per_epoch={per_epoch} exceeds this rank's {-(-num_items // world)} videos")
        self.num_items, self.seed, self.rank, self.world, self.shuffle = num_items, seed, rank, world, shuffle
        self.per_epoch, self.epochs, self.first_epoch, self.start = per_epoch, epochs, first_epoch, start

    def __iter__(self) -> Iterator[int]:
        for epoch in range(self.first_epoch, self.epochs):
            order = epoch_order(self.num_items, self.seed, epoch, self.rank, self.world, self.shuffle)
            skip = self.start if epoch == self.first_epoch else 0
            yield from (EpochIndex(i, epoch) for i in order[skip:self.per_epoch])

    def __len__(self) -> int:
        return max(0, (self.epochs - self.first_epoch) * self.per_epoch - self.start)


def collate_clips(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Fold repeated clips into the batch: B items of (r, C, T, H, W) -> (B*r, C, T, H, W); tensors
    with a leading r dim are concatenated, ``skipped`` lists are joined. In a worker the clips are
    written straight into shared memory, so handing the batch to the main process copies nothing
    (as torch's ``default_collate`` does)."""
    out: dict[str, Any] = {}
    in_worker = get_worker_info() is not None
    for key in batch[0]:
        if key in ("skipped", "no_motion"):  # path lists (unreadable videos, clips masked without motion)
            out[key] = [p for b in batch for p in b.get(key, [])]
        elif isinstance(batch[0][key], torch.Tensor):
            parts = [b[key] for b in batch]
            if in_worker:
                elem = parts[0]
                storage = elem._typed_storage()._new_shared(sum(p.numel() for p in parts), device=elem.device)
                buf = elem.new(storage).resize_(sum(p.shape[0] for p in parts), *elem.shape[1:])
                out[key] = torch.cat(parts, out=buf)
            else:
                out[key] = torch.cat(parts)
        else:
            out[key] = [b[key] for b in batch]
    return out


class SkipTally:
    """Counts unreadable-video reads over an epoch and formats the end-of-epoch report."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def update(self, skipped: list[str]) -> None:
        self.paths.extend(skipped)

    @property
    def total(self) -> int:
        return len(self.paths)

    @property
    def unique(self) -> set[str]:
        return set(self.paths)

    def report(self) -> str:
        """E.g. ``skipped 3 unreadable videos this epoch (2 files): a.mp4, b.mp4``."""
        if not self.paths:
            return "no unreadable videos this epoch"
        names = sorted(self.unique)
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        return f"skipped {self.total} unreadable videos this epoch ({len(names)} files): {shown}"

    def reset(self) -> None:
        self.paths = []


def worker_init(worker_id: int) -> None:
    """Single-threaded torch (decoding workers must not oversubscribe the trainer's cores) and
    Python/NumPy seeded from the worker's torch seed (the loader's generator + worker id). SIGINT is
    ignored: a Ctrl-C reaches the whole process group, and the main process decides what it means
    (torch stops workers with SIGTERM, which keeps its effect here)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    seed_host(torch.initial_seed())  # torch's generator is re-seeded to the seed it already has, unused so far


def build_loader(
    dataset: Dataset, batch_size: int, shuffle: bool = True, num_workers: int = 2,
    seed: int = 0, drop_last: bool = True, distributed: bool = False, *, sampler: Sampler | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader over videos with clip collation and single-threaded, seeded workers.

    Args:
        batch_size: videos per batch; each yields r clips, so batches hold batch_size * r clips.
        shuffle: reshuffle every epoch (order fixed by seed and epoch).
        seed: order and worker seeds.
        distributed: shard videos over ``torch.distributed`` ranks (rank 0 of 1 when uninitialised).
        sampler: use this sampler instead (e.g. a :class:`ShardedSampler` resumed mid-epoch).

    Call :func:`set_epoch` on the loader before each epoch. Workers persist across epochs: each
    index carries its epoch (:class:`EpochIndex`), so they need not see ``set_epoch``.
    """
    if sampler is None:
        rank, world = dist_rank_world() if distributed else (0, 1)
        sampler = RepeatAwareDistributedSampler(len(dataset), seed, rank, world, bool(shuffle))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_clips, drop_last=drop_last, worker_init_fn=worker_init,
                      generator=torch.Generator().manual_seed(seed), pin_memory=pin_memory,
                      persistent_workers=num_workers > 0)


def run_worker_init(worker_id: int) -> None:
    """:func:`worker_init` for a training run's loader, which also ignores SIGTERM: a cluster may signal
    every process of the job, and the training process, which stops cleanly on it
    (:mod:`maest.runs.preempt`), still needs its workers for the rest of the current step. The loop shuts
    them down itself (:func:`close_batches`), on every way out."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    worker_init(worker_id)


def close_batches(batches: Any) -> None:
    """Stop the loader workers behind the iterator ``batches`` now (an iterator a traceback still holds
    would otherwise keep them until the interpreter exits). torch has no public call for this."""
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


def build_run_loader(dataset: Dataset, batch_size: int, *, seed: int, rank: int, world: int, per_epoch: int,
                     epochs: int, first_epoch: int = 0, start: int = 0, num_workers: int = 2,
                     pin_memory: bool = False, threads: int = 0) -> DataLoader | ThreadPrefetch:
    """One loader for a whole training run (iterate it once): ``per_epoch`` videos per epoch and rank
    (a multiple of ``batch_size``), from item ``start`` of ``first_epoch`` to the end of epoch
    ``epochs - 1``. Workers start once and prefetch across epoch boundaries, so no epoch begins with
    a stall. A map-style dataset is ordered by :class:`RunSampler`; a streaming one (an
    ``IterableDataset`` with ``plan``, e.g. :class:`maest.data.shards.ShardDataset`) is told the same
    plan and splits itself over ranks and workers.

    ``threads`` > 0 with ``num_workers=0``: the batches are made ahead in that many background threads
    (:class:`~maest.data.prefetch.ThreadPrefetch`; the same batches, in the same order). The trainer asks
    for them with ``data.decode_device=cuda``, which cannot use worker processes."""
    if per_epoch % batch_size or start % batch_size:
        raise ValueError(f"per_epoch={per_epoch} and start={start} must be multiples of batch_size={batch_size}")
    spec = getattr(dataset, "spec", None) or getattr(getattr(dataset, "dataset", None), "spec", None)
    if getattr(spec, "decode_device", "cpu") != "cpu":
        if num_workers:
            raise ValueError(f"data.decode_device={spec.decode_device} decodes in the training process (CUDA "
                             f"cannot be used in forked loader workers): set data.num_workers=0, not {num_workers}")
        pin_memory = False  # clips are already on the GPU
    common = dict(batch_size=batch_size, num_workers=num_workers, collate_fn=collate_clips,
                  worker_init_fn=run_worker_init, pin_memory=pin_memory)
    if isinstance(dataset, IterableDataset):
        dataset.plan(seed=seed, rank=rank, world=world, batch_size=batch_size, per_epoch=per_epoch, epochs=epochs,
                     first_epoch=first_epoch, start=start, num_workers=num_workers)
        loader = DataLoader(dataset, **common)
    else:
        sampler = RunSampler(len(dataset), seed, rank, world, per_epoch, epochs, first_epoch, start)
        loader = DataLoader(dataset, sampler=sampler, drop_last=True, generator=torch.Generator().manual_seed(seed),
                            **common)
    if threads and not num_workers:
        return ThreadPrefetch(loader, threads, device=getattr(spec, "decode_device", "cpu"))
    return loader


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Point the loader's sampler (order) and dataset (augmentation seeds) at ``epoch``."""
    for obj in (loader.sampler, loader.dataset):
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


class GuardedVideos(Dataset):
    """For evaluation and feature extraction: returns ``{"failed": "path (reason)", "index": i}``
    instead of raising when a video cannot be decoded, so one broken file neither stops the job nor
    disappears from the record. Items get an ``index`` per view."""

    def __init__(self, dataset: Dataset, indices: list[int]) -> None:
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from maest.data.decode import VideoDecodeError

        index = self.indices[i]
        try:
            item = dict(self.dataset[index])
        except VideoDecodeError as e:
            return {"failed": f"{e.path} ({e.reason})", "index": index}
        item["index"] = torch.full((item["video"].shape[0],), index, dtype=torch.long)
        return item


def collate_guarded(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate :class:`GuardedVideos` items: views concatenated, failures listed under ``failed``."""
    good = [b for b in batch if "failed" not in b]
    out: dict[str, Any] = {"failed": [b["failed"] for b in batch if "failed" in b]}
    if good:
        keys = [k for k in ("video", "label", "index", "view") if k in good[0]]
        out.update({k: torch.cat([b[k] for b in good]) for k in keys})
    return out


class SeededItems(Dataset):
    """Seeds Python, NumPy and torch RNGs from (seed, epoch, index) before each item, so random
    augmentation depends on neither worker count nor where a run was resumed."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        s = mix_seed(self.seed, epoch_of(index, self.epoch), index)
        rng.seed_host(s)  # in a loading thread (ThreadPrefetch): its own generator, not torch's global one
        return self.dataset[index]
