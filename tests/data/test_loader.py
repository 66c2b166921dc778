"""Batching, sharding and THE corrupt-corpus run: a fifth of the videos broken, a full epoch through a
DataLoader with 0 and 2 workers, every failure counted exactly and warned once per path."""

import collections
import logging

import pytest
import torch

from maest.data import (
    RepeatAwareDistributedSampler,
    SkipTally,
    VideoClipDataset,
    build_loader,
    collate_clips,
    set_epoch,
)
from maest.data import decode as decode_mod
from maest.data.decode import VideoDecodeError


def _run_epochs(csv, workers, epochs, fail_log, batch_size=2):
    ds = VideoClipDataset.from_csv(csv, mode="pretrain", num_frames=8, sampling_rate=2, crop_size=32, repeat=2,
                                   seed=0)
    loader = build_loader(ds, batch_size, shuffle=True, num_workers=workers, seed=0, drop_last=False)
    tally, indices = SkipTally(), []
    for epoch in range(epochs):
        set_epoch(loader, epoch)
        for batch in loader:
            v = batch["video"]
            assert v.shape[1:] == (3, 8, 32, 32) and v.shape[0] == batch["label"].shape[0] == 2 * len(
                batch["index"].unique())
            # no zero (or constant) stand-ins: every clip carries real, varying pixels
            flat = v.flatten(1)
            assert (flat.abs().sum(1) > 0).all() and (flat.std(1) > 0.05).all()
            tally.update(batch["skipped"])
            indices += batch["index"].tolist()
    failures = fail_log.read_text().split() if fail_log.exists() else []
    return tally, indices, failures


@pytest.fixture
def traced(monkeypatch, tmp_path):
    """Record every decode failure and every warning to files: forked workers append to them too."""
    fail_log, warn_log = tmp_path / "failures.txt", tmp_path / "warnings.txt"
    original = VideoClipDataset._load

    def load(self, index):
        try:
            return original(self, index)
        except VideoDecodeError as e:
            with open(fail_log, "a") as f:
                f.write(e.path + "\n")
            raise

    monkeypatch.setattr(VideoClipDataset, "_load", load)
    monkeypatch.setattr(decode_mod, "_warned", set())
    handler = logging.FileHandler(warn_log)
    handler.setFormatter(logging.Formatter("%(process)d %(message)s"))
    logger = logging.getLogger("maest.data")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    yield fail_log, warn_log
    logger.removeHandler(handler)
    handler.close()


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_fifth_of_corpus_never_crashes_and_is_counted_exactly(corrupt_corpus, traced, workers):
    csv, bad = corrupt_corpus
    fail_log, warn_log = traced
    epochs = 2
    tally, indices, failures = _run_epochs(csv, workers, epochs, fail_log)
    # every video slot of every epoch delivered real clips; broken ones replaced by readable videos
    assert len(indices) == epochs * 10 * 2 and not {3, 7} & set(indices)
    # the tally holds exactly the failures the dataset hit (each broken file is hit >= once per epoch)
    assert collections.Counter(tally.paths) == collections.Counter(failures)
    assert tally.total == len(failures) >= epochs * 2 and tally.unique == set(bad)
    report = tally.report()
    assert report.startswith(f"skipped {tally.total} unreadable videos this epoch (2 files): ")
    assert all(p in report for p in bad)
    # one warning per path per process
    warned = [line.split(" ", 1) for line in warn_log.read_text().splitlines()]
    per_process = collections.Counter((pid, next(p for p in bad if p in msg)) for pid, msg in warned)
    assert set(per_process.values()) == {1}
    assert {p for _, p in per_process} == set(bad)
    if workers == 0:
        assert len(warned) == 2


def test_corrupt_corpus_is_deterministic_across_worker_counts(corrupt_corpus, tmp_path):
    csv, _ = corrupt_corpus
    a = _run_epochs(csv, 0, 1, tmp_path / "none")
    b = _run_epochs(csv, 2, 1, tmp_path / "none")
    assert a[0].paths == b[0].paths and a[1] == b[1]


def test_distributed_sampler_partitions_and_reproduces():
    for n in (10, 11):
        ranks = [RepeatAwareDistributedSampler(n, seed=5, rank=r, world=2) for r in range(2)]
        for s in ranks:
            s.set_epoch(3)
        a, b = list(ranks[0]), list(ranks[1])
        assert len(a) == len(b) == len(ranks[0]) == -(-n // 2)
        assert set(a) | set(b) == set(range(n))
        if n % 2 == 0:
            assert not set(a) & set(b)  # no overlap; an odd count pads one repeat, as DistributedSampler
        again = RepeatAwareDistributedSampler(n, seed=5, rank=0, world=2)
        again.set_epoch(3)
        assert list(again) == a
        again.set_epoch(4)
        assert list(again) != a
    # no process group: rank 0 of 1, everything
    solo = RepeatAwareDistributedSampler(7)
    assert sorted(solo) == list(range(7))
    with pytest.raises(ValueError, match="rank 2 outside world size 2"):
        RepeatAwareDistributedSampler(7, rank=2, world=2)


def test_build_loader_distributed_without_process_group(digits):
    ds = VideoClipDataset.from_csv(digits["train"], mode="val", num_frames=4, sampling_rate=1, crop_size=32)
    loader = build_loader(ds, 3, shuffle=False, num_workers=0, distributed=True, drop_last=False)
    assert isinstance(loader.sampler, RepeatAwareDistributedSampler) and loader.sampler.world == 1
    seen = torch.cat([b["index"] for b in loader]).tolist()
    assert seen == list(range(len(ds)))


def test_collate_folds_repeats_and_joins_skipped():
    item = lambda i, skipped: {"video": torch.full((4, 3, 2, 8, 8), float(i)),  # noqa: E731
                               "label": torch.full((4,), i), "index": torch.full((4,), i), "skipped": skipped}
    out = collate_clips([item(0, ["a.mp4"]), item(1, []), item(2, ["b.mp4", "a.mp4"])])
    assert out["video"].shape == (12, 3, 2, 8, 8) and out["label"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert out["skipped"] == ["a.mp4", "b.mp4", "a.mp4"]


def test_skip_tally_api():
    t = SkipTally()
    assert t.total == 0 and t.report() == "no unreadable videos this epoch"
    t.update(["a.mp4"])
    t.update([])
    t.update(["b.mp4", "a.mp4"])
    assert t.total == 3 and t.unique == {"a.mp4", "b.mp4"}
    assert t.report() == "skipped 3 unreadable videos this epoch (2 files): a.mp4, b.mp4"
    t.reset()
    assert t.total == 0 and t.unique == set()
