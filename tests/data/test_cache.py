"""``data.cache=memory``: every video decoded once, up front; the same clips and the same run as from the
files, broken videos left out and reported, and a clear refusal past ``data.cache_gb`` or where the cache
cannot hold what the run needs."""

import json

import pytest
import torch

from maest.cli import main
from maest.data.config import DataConfig, FinetuneDataConfig
from maest.data.memory import CacheFull, InMemoryClips
from maest.models import model_config


def _enc():
    return model_config("tiny").encoder


@pytest.mark.parametrize("mode", ["pretrain", "finetune"])
def test_held_clips_are_the_files_clips(digits, mode):
    kw = dict(source=str(digits["train"]), sampling_rate=2, num_workers=0)
    if mode == "pretrain":
        files, held = DataConfig(**kw).build(_enc()), DataConfig(cache="memory", **kw).build(_enc())
    else:
        files = FinetuneDataConfig(**kw).build(_enc(), mode, source=str(digits["train"]))
        held = FinetuneDataConfig(cache="memory", **kw).build(_enc(), mode, source=str(digits["train"]))
    assert isinstance(held, InMemoryClips) and not isinstance(files, InMemoryClips)
    assert held.items == files.items and held.nbytes > 0
    files.spec.seed = held.spec.seed = 3
    for i in range(len(files)):
        a, b = files[i], held[i]
        assert torch.equal(a["video"], b["video"]) and torch.equal(a["label"], b["label"])


def test_validation_and_test_sets_are_read_from_the_files(digits):
    """Read once (per epoch), and a video they cannot decode is listed as failed by the job itself."""
    cfg = FinetuneDataConfig(source=str(digits["train"]), val_source=str(digits["val"]), cache="memory")
    for mode in ("val", "test"):
        assert not isinstance(cfg.build(_enc(), mode), InMemoryClips)


def test_threads_do_not_change_what_is_held(digits):
    plain = DataConfig(source=str(digits["train"])).build(_enc())
    one, many = InMemoryClips(plain, threads=1), InMemoryClips(plain, threads=3)
    assert [v.path for v in one.videos] == [v.path for v in many.videos]
    assert all(torch.equal(a.frames, b.frames) for a, b in zip(one.videos, many.videos, strict=True))


def test_past_the_limit_is_refused_naming_the_setting(digits):
    cfg = DataConfig(source=str(digits["train"]), cache="memory", cache_gb=1e-3)  # 1.07 MB: 2 of its 393 kB videos
    with pytest.raises(CacheFull, match=r"pass data\.cache_gb=0\.001 GB after 3 of 8 videos.*raise data\.cache_gb"):
        cfg.validate().build(_enc())


@pytest.mark.parametrize("setting, match", [
    ({"cache": "disk"}, "data.cache='disk' is not one of"),
    ({"cache_gb": 0.0}, "data.cache_gb=0.0 must be > 0"),
    ({"cache": "memory", "decode_device": "cuda"}, "data.decode_device=cuda.*set data.cache=none"),
    ({"cache": "memory", "motion": "codec"}, "data.motion=codec.*set data.cache=none"),
    ({"cache": "memory", "layout": "shards"}, "shards stream.*set data.cache=none"),
])
def test_settings_the_cache_cannot_serve_are_refused(setting, match):
    with pytest.raises(ValueError, match=match):
        DataConfig(source="x.csv", **setting).validate()


def _pretrain(tmp_path, name, source, *sets):
    args = ["pretrain", str(source), "--preset", "tiny", "--output-dir", str(tmp_path / name), "--json",
            "--set", "train.max_steps=3", "--set", "train.progress=false", "--set", "train.tensorboard=false",
            "--set", "train.batch_size=2", "--set", "data.num_workers=0", "--set", "data.sampling_rate=2"]
    for setting in sets:
        args += ["--set", setting]
    return args


def test_a_held_run_is_the_run_from_files(digits, tmp_path, capsys):
    """Through the CLI: the same losses and the same weights, step for step; the held set also serves loader
    worker processes (forked: they share the decoded frames)."""
    results = []
    for cache, workers in (("none", 0), ("memory", 2)):
        args = _pretrain(tmp_path, cache, digits["train"], f"data.cache={cache}", f"data.num_workers={workers}")
        assert main(args) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        weights = torch.load(summary["checkpoint"], weights_only=True)["model"]
        results.append((summary["loss"], weights))
    assert results[0][0] == results[1][0]
    assert results[0][1].keys() == results[1][1].keys()
    assert all(torch.equal(results[0][1][k], results[1][1][k]) for k in results[0][1])


def test_broken_videos_are_left_out_and_reported(corrupt_corpus, tmp_path, capsys):
    csv, bad = corrupt_corpus
    args = _pretrain(tmp_path, "held", csv, "data.cache=memory")
    assert main(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert sorted(p.split(" (")[0] for p in summary["skipped"]) == sorted(bad)


def test_a_cache_over_its_limit_is_one_line_and_exit_2(digits, tmp_path, capsys):
    args = _pretrain(tmp_path, "small", digits["train"], "data.cache=memory", "data.cache_gb=0.0001")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "data.cache_gb=0.0001" in err and "Traceback" not in err


@pytest.mark.parametrize("job", ["pretrain", "finetune"])
@pytest.mark.parametrize("occupied", ["earlier run", "live run"])
def test_a_folder_that_cannot_take_the_run_is_refused_before_decoding(digits, tmp_path, capsys, monkeypatch, occupied,
                                                                      job):
    """The trainer's folder checks come before the whole set is decoded (minutes for a large set), not after."""
    from maest.runs.lock import RunLock

    out = tmp_path / "run"
    out.mkdir()
    if occupied == "earlier run":
        (out / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    lock = RunLock(out).acquire() if occupied == "live run" else None

    def decoded(*a, **k):
        raise AssertionError("decoded before the run folder was checked")

    monkeypatch.setattr(InMemoryClips, "__init__", decoded)
    try:
        args = _pretrain(tmp_path, "run", digits["train"], "data.cache=memory")
        if job == "finetune":
            args[0], args[args.index("tiny")] = "finetune", "tiny_finetune"
        assert main(args) == 2
    finally:
        if lock is not None:
            lock.release()
    err = capsys.readouterr().err.strip()
    expected = "in use by another run (PID" if occupied == "live run" else "already holds the metrics.jsonl"
    assert expected in err and len(err.splitlines()) == 1 and "Traceback" not in err
