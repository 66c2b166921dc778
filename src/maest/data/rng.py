"""Where the clip pipeline draws its random numbers: torch's global generator, as always, in the training
process and in loader worker processes; a generator of its own in each loading thread
(:class:`maest.data.loader.ThreadPrefetch`, the GPU-decoding path), since threads share the global one with
the training thread (dropout, ``torch.manual_seed`` before a step) and would race on it.

A CPU ``torch.Generator`` seeded with s gives the same draws as the global generator seeded with s, so an
item seeded by (seed, epoch, video) is the same in a thread as anywhere else.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

_local = threading.local()


def generator() -> torch.Generator | None:
    """This thread's generator in a loading thread, else None (torch's global one): pass it as
    ``generator=`` to every draw of the pipeline."""
    return getattr(_local, "generator", None)


def seed_item(seed: int) -> None:
    """Seed the draws of the item about to be made: this loading thread's generator, else torch's global
    CPU generator (only the CPU one: seeding accelerators costs time and is not the pipeline's)."""
    gen = generator()
    (torch.default_generator if gen is None else gen).manual_seed(seed)


def seed_host(seed: int) -> None:
    """:func:`maest.runtime.seed_host` (Python's, NumPy's and torch's CPU generators) for one item, with
    torch's draws seeded in this loading thread's generator when it has one."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    seed_item(seed)


@contextmanager
def own_generator() -> Iterator[torch.Generator]:
    """Give the current (loading) thread a generator of its own for as long as the block runs."""
    _local.generator = torch.Generator()
    try:
        yield _local.generator
    finally:
        del _local.generator
