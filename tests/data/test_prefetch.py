"""GPU decoding's loader, checked with CPU decoding: batches made ahead in background threads
(:class:`maest.data.prefetch.ThreadPrefetch`) are the plain loader's batches, in its order, whatever the
training thread draws meanwhile; unreadable videos are skipped and counted as before; an error raised in a
thread reaches the training thread unchanged; a resumed loader gives the rest of the run."""

from __future__ import annotations

import threading

import pytest
import torch

from maest.data import SkipTally, VideoClipDataset
from maest.data.loader import SeededItems, build_run_loader, close_batches
from maest.data.prefetch import ThreadPrefetch


def _dataset(csv, **kw):
    spec = dict(mode="finetune", num_frames=8, sampling_rate=2, crop_size=32, repeat=2, rand_aug=True,
                erase_prob=0.5, seed=0, **kw)
    return SeededItems(VideoClipDataset.from_csv(csv, **spec), seed=3)


def _run(ds, threads, start=0, epochs=2, busy=True):
    loader = build_run_loader(ds, 2, seed=0, rank=0, world=1, per_epoch=10, epochs=epochs, start=start,
                              num_workers=0, threads=threads)
    assert isinstance(loader, ThreadPrefetch) == bool(threads)
    out = []
    for batch in loader:
        out.append(batch)
        if busy:  # the training thread seeds and draws from torch's global generator between steps
            torch.manual_seed(len(out))
            torch.rand(1000)
    return out


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys() and x["skipped"] == y["skipped"]
        for k in ("video", "index", "label"):
            torch.testing.assert_close(x[k], y[k], rtol=0, atol=0)


@pytest.mark.parametrize("threads", [1, 3])
def test_threads_give_the_plain_loaders_batches_with_skips_counted_alike(corrupt_corpus, threads):
    csv, bad = corrupt_corpus
    plain, ahead = _run(_dataset(csv), 0), _run(_dataset(csv), threads)
    _same(plain, ahead)
    tally_plain, tally_ahead = SkipTally(), SkipTally()
    for p, a in zip(plain, ahead, strict=True):
        tally_plain.update(p["skipped"])
        tally_ahead.update(a["skipped"])
    assert tally_ahead.paths == tally_plain.paths and tally_ahead.unique == set(bad)


def test_uint8_clips_and_a_resumed_loader(corrupt_corpus):
    csv, _ = corrupt_corpus
    full = _run(_dataset(csv, transfer="uint8"), 2)
    _same(full, _run(_dataset(csv, transfer="uint8"), 0))
    _same(full[3:], _run(_dataset(csv, transfer="uint8"), 2, start=6))  # item 6 = batch 3 of epoch 0


class Broken(torch.utils.data.Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        if i == 7:
            raise RuntimeError("data.source holds something that is not a video")
        return {"video": torch.full((1, 2), float(i)), "skipped": []}


def test_an_error_in_a_thread_reaches_the_training_thread_at_its_batch():
    def batches(threads):
        got = []
        loader = build_run_loader(Broken(), 1, seed=0, rank=0, world=1, per_epoch=10, epochs=1, num_workers=0,
                                  threads=threads)
        with pytest.raises(RuntimeError, match="^data.source holds something that is not a video$"):
            for b in loader:
                got.append(float(b["video"][0, 0]))
        return got

    plain = batches(0)
    assert batches(1) == batches(2) == plain and 7 not in plain
    assert not [t for t in threading.enumerate() if t.name.startswith("maest-loader")]  # stopped with the error


def test_closing_stops_the_threads_mid_run(corrupt_corpus):
    csv, _ = corrupt_corpus
    it = iter(build_run_loader(_dataset(csv), 2, seed=0, rank=0, world=1, per_epoch=10, epochs=2, num_workers=0,
                               threads=2))
    next(it)
    close_batches(it)
    assert not [t for t in threading.enumerate() if t.name.startswith("maest-loader")]
    with pytest.raises(StopIteration):
        next(it)


def test_threads_need_a_loader_without_workers():
    loader = torch.utils.data.DataLoader(Broken(), num_workers=1)
    with pytest.raises(ValueError, match="the loader has 1 workers"):
        ThreadPrefetch(loader)
