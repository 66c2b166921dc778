"""Batching: a rank-aware, resumable sampler; collation that folds repeated clips into the batch;
and the per-epoch tally of unreadable videos."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def mix_seed(*parts: int) -> int:
    """A stable 63-bit seed from integers (``hash()`` is salted per process; this is not)."""
    digest = hashlib.blake2b(",".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


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
        return iter(order[self.start:])

    def __len__(self) -> int:
        return -(-self.num_items // self.world) - self.start


def collate_clips(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Fold repeated clips into the batch: B items of (r, C, T, H, W) -> (B*r, C, T, H, W); tensors
    with a leading r dim are concatenated, ``skipped`` lists are joined."""
    out: dict[str, Any] = {}
    for key in batch[0]:
        if key == "skipped":
            out[key] = [p for b in batch for p in b.get("skipped", [])]
        elif isinstance(batch[0][key], torch.Tensor):
            out[key] = torch.cat([b[key] for b in batch])
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
        if not self.paths:
            return "no unreadable videos this epoch"
        names = sorted(self.unique)
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        return f"skipped {self.total} unreadable video reads ({len(names)} files) this epoch: {shown}"

    def reset(self) -> None:
        self.paths = []


def worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)  # decoding workers must not oversubscribe the trainer's cores


def build_loader(dataset: Dataset, batch_size: int, sampler: Sampler | list[int], num_workers: int = 2,
                 drop_last: bool = True, pin_memory: bool = False) -> DataLoader:
    """A DataLoader with clip collation and single-threaded workers."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_clips, drop_last=drop_last, worker_init_fn=worker_init,
                      pin_memory=pin_memory, persistent_workers=False)


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
