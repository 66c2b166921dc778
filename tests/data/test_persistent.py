"""Persistent workers: indices carry their epoch, so workers that outlive an epoch still seed augmentation by
(seed, epoch, video); the trainer's one run-long loader resumes bit-identically with workers; and
data.decode_device=cuda is refused in one line where it cannot work."""

import pickle

import pytest
import torch

from maest.cli import main as cli_main
from maest.data import VideoClipDataset, build_loader, set_epoch
from maest.data.decode import check_decode_device
from maest.data.loader import EpochIndex, RunSampler, ShardedSampler, build_run_loader, epoch_order
from maest.overrides import apply_overrides
from maest.runs.metrics import read_metrics
from maest.train.pretrain import run
from maest.train.recipes import get_preset


def _ds(digits, seed=0):
    return VideoClipDataset.from_csv(digits["train"], mode="pretrain", num_frames=4, sampling_rate=2, crop_size=32,
                                     repeat=2, seed=seed)


def test_epoch_index_is_an_int_that_keeps_its_epoch():
    i = EpochIndex(5, epoch=3)
    assert i == 5 and hash(i) == hash(5) and [10, 11, 12, 13, 14, 15][i] == 15 and str(i) == "5"
    j = pickle.loads(pickle.dumps(i))
    assert j == 5 and j.epoch == 3
    s = ShardedSampler(6, seed=1)
    s.set_epoch(2)
    assert all(k.epoch == 2 for k in s) and list(s) == epoch_order(6, 1, 2)


def test_run_sampler_concatenates_epochs_and_resumes():
    full = list(RunSampler(10, seed=0, rank=0, world=1, per_epoch=8, epochs=3))
    assert len(full) == 24 and [k.epoch for k in full] == [0] * 8 + [1] * 8 + [2] * 8
    assert full[:8] == epoch_order(10, 0, 0)[:8] and full[8:16] == epoch_order(10, 0, 1)[:8]
    assert list(RunSampler(10, 0, 0, 1, 8, 3, first_epoch=1, start=6)) == full[14:]


def test_persistent_workers_see_each_epoch(digits):
    """Two epochs through one persistent 2-worker loader give exactly the clips of fresh single-process
    loaders; without the epoch in the index the workers would repeat epoch 0's augmentation."""
    ds = _ds(digits)
    loader = build_loader(ds, 2, shuffle=True, num_workers=2, seed=0, drop_last=False)
    assert loader.persistent_workers
    got = []
    for epoch in range(2):
        set_epoch(loader, epoch)
        got.append(torch.cat([b["video"] for b in loader]))
    for epoch in range(2):
        ref = _ds(digits)
        solo = build_loader(ref, 2, shuffle=True, num_workers=0, seed=0, drop_last=False)
        set_epoch(solo, epoch)
        assert torch.equal(got[epoch], torch.cat([b["video"] for b in solo]))
    assert not torch.equal(got[0], got[1])


def test_run_loader_is_the_same_with_and_without_workers(digits):
    ds = _ds(digits)
    kw = dict(seed=0, rank=0, world=1, per_epoch=8, epochs=2)
    a = list(build_run_loader(ds, 2, num_workers=0, **kw))
    b = list(build_run_loader(ds, 2, num_workers=2, **kw))
    assert len(a) == len(b) == 8
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["video"], y["video"]) and torch.equal(x["index"], y["index"])


def _cfg(out, digits, *extra):
    cfg = get_preset("tiny")
    cfg.data.source = str(digits["train"])
    return apply_overrides(cfg, [f"train.output_dir={out}", "train.tensorboard=false", "train.progress=false",
                                 "train.epochs=2", "train.log_every=1", "data.num_workers=2", "data.repeat_aug=2",
                                 *extra])


def _losses(path):
    return {r["step"]: r["loss"] for r in read_metrics(path / "metrics.jsonl") if "loss" in r}


def test_pretrain_with_persistent_workers_resumes_bit_identically(digits, tmp_path):
    """Real videos, 2 workers, 8 videos / batch 2 = 4 steps per epoch: 6 steps straight vs 3 + 3 resumed
    (mid-epoch, then across the epoch boundary with the same run-long loader)."""
    run(_cfg(tmp_path / "full", digits, "train.max_steps=6"))
    run(_cfg(tmp_path / "split", digits, "train.max_steps=3", "train.save_every_steps=3"))
    run(_cfg(tmp_path / "split", digits, "train.max_steps=6", "train.resume=auto"))
    a, b = _losses(tmp_path / "full"), _losses(tmp_path / "split")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5, 6]
    assert a == b


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_cuda_decoding_is_refused_in_one_line_on_cpu(digits, tmp_path, capsys):
    with pytest.raises(RuntimeError, match="data.decode_device=cuda needs a CUDA GPU.*use data.decode_device=cpu"):
        check_decode_device("cuda")
    with pytest.raises(ValueError, match="is not one of"):
        check_decode_device("tpu")
    check_decode_device("cpu")
    code = cli_main(["pretrain", str(digits["train"]), "--preset", "tiny", "--output-dir", str(tmp_path / "run"),
                     "--set", "data.decode_device=cuda", "--set", "train.progress=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "data.decode_device=cuda needs a CUDA GPU" in err[0]
    assert "Traceback" not in err[0]


def test_cuda_decoding_refused_with_a_cpu_torchcodec_build(monkeypatch):
    """A GPU is present but torchcodec is a CPU build: the message names the build and the fix."""
    from maest.data import decode

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(decode, "torchcodec_available", lambda: True)
    monkeypatch.setattr(decode, "_torchcodec_cuda", lambda device: False)
    with pytest.raises(RuntimeError, match="has no CUDA decoder .*CUDA build.*data.decode_device=cpu"):
        check_decode_device("cuda")

