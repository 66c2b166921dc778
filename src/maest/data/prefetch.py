"""Batches made ahead in background threads: the loader of a run that decodes on a GPU
(``data.decode_device=cuda``), where loader worker processes cannot be used (a CUDA decoder does not
survive a fork) but threads can, so decoding and augmentation leave the training thread.

The batches come out exactly as the loader's own iterator would give them: in the sampler's order (each
batch has a sequence number, and the consumer takes them by number), each item seeded by (seed, epoch,
video) in its thread's own generator (:mod:`maest.data.rng`; the training thread's draws and the loading
threads' never touch each other), unreadable videos skipped and listed in ``skipped`` inside the item, as
ever. An error a thread meets is raised in the training thread, unchanged, where the plain loader would
have raised it. Resuming needs nothing from here: the sampler starts at the resume point, and batches made
ahead of a stop are dropped, as a worker's prefetched batches are.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset

from maest.data import rng

_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _pinned(batch: Any) -> Any:
    if not isinstance(batch, dict):
        return batch
    return {k: v.pin_memory() if isinstance(v, torch.Tensor) and v.device.type == "cpu" else v
            for k, v in batch.items()}


class ThreadPrefetch:
    """The batches of ``loader`` (a ``DataLoader`` with ``num_workers=0``), made by ``threads`` threads at most
    ``depth`` batches ahead of the consumer. A map-style dataset's batches are made in parallel, one batch
    per thread at a time; a streaming dataset (one iterator) is read by one thread. ``device``: a GPU
    ("cuda:N") the threads make current, as the training thread's. Iterate once; :meth:`close` stops the
    threads (so does the end, or an error)."""

    def __init__(self, loader: DataLoader, threads: int = 1, depth: int = 2, device: str = "cpu") -> None:
        if loader.num_workers:
            raise ValueError(f"ThreadPrefetch makes the batches itself; the loader has {loader.num_workers} workers")
        if threads < 1 or depth < 1:
            raise ValueError(f"threads={threads} and depth={depth} must be >= 1")
        self.loader, self.device = loader, device
        self.threads = 1 if isinstance(loader.dataset, IterableDataset) else threads
        self.depth = max(depth, self.threads)
        self._started = False
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._results: dict[int, Any] = {}
        self._taken = 0  # batches handed out
        self._fetched = 0  # tasks drawn (sequence numbers given)
        self._finished = False  # the task stream ended or failed
        self._workers: list[threading.Thread] = []

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> ThreadPrefetch:
        return self

    def _tasks_and_work(self) -> tuple[Iterator[Any], Callable[[Any], Any]]:
        loader = self.loader
        pin = _pinned if loader.pin_memory and torch.cuda.is_available() else (lambda b: b)
        if isinstance(loader.dataset, IterableDataset) or loader.batch_sampler is None:
            return iter(loader), pin  # the loader's own iterator makes each batch: one thread
        ds, collate = loader.dataset, loader.collate_fn
        return iter(loader.batch_sampler), lambda idx: pin(collate([ds[i] for i in idx]))

    def _start(self) -> None:
        self._started = True
        self._tasks, self._work = self._tasks_and_work()
        for k in range(self.threads):
            t = threading.Thread(target=self._run, name=f"maest-loader-{k}", daemon=True)
            self._workers.append(t)
            t.start()

    def _run(self) -> None:
        if self.device.startswith("cuda:"):
            torch.cuda.set_device(self.device)  # the current device is per thread
        with rng.own_generator():
            while True:
                with self._cond:  # at most `depth` batches made or being made ahead of the consumer
                    while not (self._stop.is_set() or self._finished or self._fetched - self._taken < self.depth):
                        self._cond.wait(0.1)
                    if self._stop.is_set() or self._finished:
                        return
                    seq = self._fetched
                    try:
                        task = next(self._tasks)
                    except BaseException as e:  # StopIteration: the end; anything else: an error at this batch
                        self._finished = True
                        self._results[seq] = _END if isinstance(e, StopIteration) else _Failure(e)
                        self._cond.notify_all()
                        return
                    self._fetched += 1
                try:
                    result = self._work(task)
                except BaseException as e:
                    result = _Failure(e)
                with self._cond:
                    self._results[seq] = result
                    self._cond.notify_all()

    def __next__(self) -> dict[str, Any]:
        if not self._started:
            self._start()
        with self._cond:
            while self._taken not in self._results:
                if self._stop.is_set():
                    raise StopIteration
                self._cond.wait(0.1)
            result = self._results.pop(self._taken)
            self._taken += 1
            self._cond.notify_all()
        if result is _END:
            self.close()
            raise StopIteration
        if isinstance(result, _Failure):
            self.close()
            raise result.error
        return result

    def close(self) -> None:
        """Stop the threads (a batch being made is finished first) and drop the batches made ahead."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._workers:
            if t is not threading.current_thread():
                t.join()
        self._results.clear()

    _shutdown_workers = close  # what maest.data.loader.close_batches calls
