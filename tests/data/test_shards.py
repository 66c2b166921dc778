"""WebDataset-format shards: writing (maest shard), reading local / pipe: / foreign-written shards, the
rank x worker split, broken samples inside a shard, exact resume position, and pretrain from shards."""

import collections
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from maest.cli import main as cli_main
from maest.data import dataset_from_source
from maest.data.datasets import read_csv_list
from maest.data.loader import build_run_loader
from maest.data.shard_files import expand_braces, is_shard_source, iter_shard, read_manifest, resolve_shards
from maest.data.shard_writer import write_shards
from maest.data.shards import ShardDataset, buffer_order

SPEC = dict(mode="pretrain", num_frames=4, sampling_rate=2, crop_size=32, repeat=2)


@pytest.fixture(scope="module")
def videos(digits):
    """(path, label) of the 8 training digit videos."""
    return read_csv_list(digits["train"])


@pytest.fixture(scope="module")
def shards(tmp_path_factory, videos):
    """12 samples (the 8 videos, 4 of them twice) in shards of uneven size: one of 5 samples, then
    7 samples in shards of about 20 kB (2 or 3 videos each)."""
    out = tmp_path_factory.mktemp("shards")
    items = videos + videos[:4]
    classes = [f"c{i}" for i in range(10)]
    first = write_shards(items[:5], out, classes, prefix="a", progress=False)
    rest = write_shards(items[5:], out, classes, prefix="b", shard_bytes=20_000, overwrite=True, progress=False)
    manifest = {**first, "num_samples": 12, "shards": first["shards"] + rest["shards"]}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out, manifest


def _stub_decode(monkeypatch):
    """Decoding replaced by the sample's index and label: tests of the split run in milliseconds."""
    def decode(self, index, name, sample):
        if not any(k in sample for k in ("mp4", "webm")):
            from maest.data.decode import VideoDecodeError

            raise VideoDecodeError(name, "missing")
        return {"video": torch.full((1, 1), float(index)), "index": torch.tensor([index]),
                "label": torch.tensor([json.loads(sample["json"])["label"]])}

    monkeypatch.setattr(ShardDataset, "_decode", decode)


def test_write_shards_layout_manifest_and_refusal(shards, videos):
    out, m = shards
    assert m["num_samples"] == 12 and len(m["shards"]) >= 4 and sum(s["count"] for s in m["shards"]) == 12
    assert len({s["count"] for s in m["shards"]}) > 1  # uneven shards
    assert m["classes"][3] == "c3" and m["label_map"]["c3"] == 3 and m["skipped"] == []
    assert not list(out.glob("*.tmp"))
    with tarfile.open(out / m["shards"][0]["url"]) as tf:
        names = tf.getnames()
        assert names[:4] == ["000000000.mp4", "000000000.json", "000000000.cls", "000000000.txt"]
        meta = json.loads(tf.extractfile("000000000.json").read())
        path, label = videos[0]
        assert meta["label"] == label and meta["path"] == path and meta["class"] == f"c{label}"
        assert meta["fps"] > 0 and meta["num_frames"] == 32 and (meta["width"], meta["height"]) == (64, 64)
        assert tf.extractfile("000000000.mp4").read() == Path(path).read_bytes()  # original bytes
    with pytest.raises(ValueError, match="already holds shards.*--overwrite"):
        write_shards(videos[:1], out, progress=False)


def test_shard_cli_lists_and_skips_unreadable(tmp_path, videos, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    lst = tmp_path / "list.csv"
    lst.write_text("".join(f"{p} {lab}\n" for p, lab in videos[:3]) + f"{bad} 1\n")
    assert cli_main(["shard", str(lst), str(tmp_path / "out"), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "wrote 3 videos in 1 shard(s)" in text and f"{bad} (" in text
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [s["path"] for s in m["skipped"]] == [str(bad)]
    assert cli_main(["shard", str(lst), str(tmp_path / "out"), "--no-progress"]) == 2  # no silent overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_sources_resolve_alike(shards):
    out, m = shards
    names = [s["url"] for s in m["shards"]]
    pattern = str(out / f"{{a-000000,b-{{000000..{len(names) - 2:06d}}}}}.tar")
    assert expand_braces(pattern) == [str(out / n) for n in names]
    assert expand_braces("a-{1..3}-{x,y}") == ["a-1-x", "a-1-y", "a-2-x", "a-2-y", "a-3-x", "a-3-y"]
    for src in (out, out / "manifest.json", pattern):
        assert is_shard_source(src)
        assert resolve_shards(src).counts == [s["count"] for s in m["shards"]]
    assert not is_shard_source(out.parent / "nothing-here.csv")


def test_local_and_pipe_reads_give_the_same_clips(shards):
    out, m = shards
    local = dataset_from_source(out / m["shards"][0]["url"], **SPEC, seed=0)
    piped = dataset_from_source(f"pipe:cat {out / m['shards'][0]['url']}", **SPEC, seed=0, allow_pipe=True)
    assert isinstance(piped, ShardDataset) and len(local) == len(piped) == m["shards"][0]["count"]
    a, b = list(local), list(piped)
    assert [x["index"].tolist() for x in a] == [x["index"].tolist() for x in b]
    assert all(torch.equal(x["video"], y["video"]) for x, y in zip(a, b, strict=True))
    assert a[0]["video"].shape == (2, 3, 4, 32, 32) and a[0]["video"].std() > 0.05
    # labels from the json; a failing pipe command is one clear error
    assert {int(x["label"][0]) for x in a} <= set(range(10))
    with pytest.raises(ValueError, match="cannot read shard pipe:exit 3"):
        resolve_shards("pipe:exit 3", allow_pipe=True)


def test_foreign_video2dataset_shard(tmp_path, videos):
    """video2dataset's layout: <key>.mp4 + <key>.json (url, caption, status...) + <key>.txt (caption)."""
    path = tmp_path / "00000.tar"
    with tarfile.open(path, "w") as tf:
        for i, (p, _) in enumerate(videos[:3]):
            key = f"0000{i:05d}"
            meta = {"url": f"https://example.com/{i}", "key": key, "status": "success", "caption": f"clip {i}"}
            for ext, data in (("mp4", Path(p).read_bytes()), ("txt", f"clip {i}".encode()),
                              ("json", json.dumps(meta).encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    ds = dataset_from_source(str(path), **SPEC, seed=0)
    items = list(ds)
    assert len(ds) == 3 and sorted(int(x["index"][0]) for x in items) == [0, 1, 2]
    assert all(x["label"].tolist() == [-1, -1] and x["skipped"] == [] for x in items)  # unlabelled
    keys = [k for _, k, _ in iter_shard(str(path))]
    assert keys == ["000000000", "000000001", "000000002"]


@pytest.mark.parametrize("per_rank_batches", [3, 2])
def test_two_ranks_two_workers_see_every_sample_once(shards, monkeypatch, per_rank_batches):
    """12 samples in uneven shards, 2 ranks x 2 workers, batch 2: each epoch covers every sample
    exactly once (3 batches per rank), or a disjoint subset when the epoch is cut (2 batches)."""
    _stub_decode(monkeypatch)
    out, _ = shards
    ds = dataset_from_source(out, **SPEC)
    seen = collections.defaultdict(list)
    for rank in range(2):
        loader = build_run_loader(ds, 2, seed=1, rank=rank, world=2, per_epoch=2 * per_rank_batches, epochs=2,
                                  num_workers=2)
        for i, batch in enumerate(loader):
            seen[i // per_rank_batches] += batch["index"].tolist()
    for epoch in range(2):
        if per_rank_batches == 3:
            assert sorted(seen[epoch]) == list(range(12))
        else:
            assert len(set(seen[epoch])) == len(seen[epoch]) == 8
    assert seen[0] != seen[1]  # reshuffled per epoch


def test_shuffle_buffer_order_is_a_seeded_permutation():
    a = buffer_order(50, 8, torch.Generator().manual_seed(0))
    assert sorted(a) == list(range(50)) and a != list(range(50))
    assert a == buffer_order(50, 8, torch.Generator().manual_seed(0))
    assert buffer_order(5, 1, torch.Generator()) == list(range(5))


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_continues_at_the_same_sample(shards, workers):
    """Real decoding: a loader started mid-run (epoch 0 batch 1, epoch 1 batch 2) yields exactly the
    uninterrupted loader's remaining batches, clips bit-identical."""
    out, _ = shards
    ds = dataset_from_source(out, **SPEC)
    kw = dict(seed=3, rank=0, world=1, per_epoch=8, epochs=2, num_workers=workers)
    full = list(build_run_loader(ds, 2, **kw))
    assert len(full) == 8
    for first_epoch, start in ((0, 2), (1, 4)):
        resumed = list(build_run_loader(ds, 2, first_epoch=first_epoch, start=start, **kw))
        ref = full[first_epoch * 4 + start // 2:]
        assert [b["index"].tolist() for b in resumed] == [b["index"].tolist() for b in ref]
        assert all(torch.equal(a["video"], b["video"]) for a, b in zip(resumed, ref, strict=True))


def test_broken_samples_inside_a_shard_are_skipped_counted_and_replaced(tmp_path, videos):
    """A shard with a garbage video and a truncated one, and a second shard cut off mid-way."""
    good = [Path(p).read_bytes() for p, _ in videos[:6]]
    samples = [good[0], b"garbage" * 100, good[1], good[2][: len(good[2]) // 3], good[3]]
    with tarfile.open(tmp_path / "a.tar", "w") as tf:
        for i, data in enumerate(samples):
            for ext, blob in (("mp4", data), ("cls", b"1")):
                info = tarfile.TarInfo(f"{i:04d}.{ext}")
                info.size = len(blob)
                tf.addfile(info, io.BytesIO(blob))
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": [{"url": "a.tar", "count": 5},
                                                                  {"url": "b.tar", "count": 3}]}))
    with tarfile.open(tmp_path / "b_full.tar", "w") as tf:
        for i, data in enumerate(good[4:6] + [good[0]]):
            info = tarfile.TarInfo(f"{i:04d}.mp4")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    full = (tmp_path / "b_full.tar").read_bytes()
    (tmp_path / "b.tar").write_bytes(full[: 512 + len(good[4]) + 700])  # cut inside the second sample
    ds = dataset_from_source(tmp_path / "manifest.json", **SPEC, seed=0)
    for workers in (0, 2):
        batches = list(build_run_loader(ds, 2, seed=0, rank=0, world=1, per_epoch=8, epochs=1,
                                        num_workers=workers))
        skipped = [p for b in batches for p in b["skipped"]]
        served = [i for b in batches for i in b["index"][::2].tolist()]
        assert len(served) == 8  # every slot delivered real clips
        assert not {1, 3, 6, 7} & set(served)  # the broken and the missing never served
        names = collections.Counter(p.rsplit(":", 1)[-1] for p in skipped)
        assert {"0001", "0003", "#1", "#2"} <= set(names)  # garbage, truncated, and the cut-off samples
        for b in batches:
            flat = b["video"].flatten(1)
            assert (flat.std(1) > 0.05).all()


def test_pretrain_from_shards_through_the_cli(shards, tmp_path, capsys):
    out, _ = shards
    args = ["pretrain", str(out), "--preset", "tiny", "--output-dir", str(tmp_path / "run"),
            "--set", "train.epochs=2", "--set", "data.num_workers=2", "--set", "train.tensorboard=false",
            "--set", "train.progress=false", "--set", "train.max_steps=7", "--json"]
    assert cli_main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 7 and summary["loss"] > 0


def test_shards_refuse_evaluation_modes(shards):
    out, _ = shards
    with pytest.raises(ValueError, match="shards stream training data"):
        dataset_from_source(out, mode="val", num_frames=4, sampling_rate=2, crop_size=32)


def test_shard_subprocess_cli_help():
    r = subprocess.run([sys.executable, "-m", "maest.cli", "shard", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--shard-size" in r.stdout


def test_fsspec_url_reads_like_a_local_shard(shards):
    fsspec = pytest.importorskip("fsspec")
    out, m = shards
    name = m["shards"][0]["url"]
    fsspec.filesystem("memory").pipe(f"/maest-test/{name}", (out / name).read_bytes())
    remote = dataset_from_source(f"memory://maest-test/{name}", **SPEC, seed=0)
    local = dataset_from_source(out / name, **SPEC, seed=0)
    a, b = list(remote), list(local)
    assert len(a) == len(b) == m["shards"][0]["count"]
    assert all(torch.equal(x["video"], y["video"]) for x, y in zip(a, b, strict=True))


def test_manifest_json_round_trip_keeps_classes(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"shards": [{"url": "x.tar", "count": 2}], "classes": ["a", "b"]}))
    (tmp_path / "x.tar").write_bytes(bytes(4096))  # a listed local shard must exist and be able to hold its count
    m = read_manifest(tmp_path / "m.json")
    assert m.urls == [str(tmp_path / "x.tar")] and m.counts == [2] and m.classes == ["a", "b"]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="is not a shard manifest"):
        read_manifest(tmp_path / "bad.json")


def test_index_writes_a_manifest_for_foreign_shards(shards, tmp_path, capsys):
    out, m = shards
    pattern = f"pipe:cat {out}/b-{{000000..{len(m['shards']) - 2:06d}}}.tar"
    target = tmp_path / "index.json"
    assert cli_main(["shard", pattern, str(target), "--index"]) == 0
    assert "7 samples" in capsys.readouterr().out
    written = json.loads(target.read_text())
    assert [s["count"] for s in written["shards"]] == [s["count"] for s in m["shards"][1:]]
    assert resolve_shards(target, allow_pipe=True).urls[0].startswith("pipe:cat ")  # commands kept as written
    assert cli_main(["shard", pattern, str(target), "--index"]) == 2  # no silent overwrite


def test_classifier_data_checks_the_shard_class_count(shards):
    out, _ = shards
    kw = dict(mode="finetune", num_frames=4, sampling_rate=2, crop_size=32)
    with pytest.raises(ValueError, match="have 10 classes but model.num_classes=5"):
        dataset_from_source(out, num_classes=5, **kw)
    assert len(dataset_from_source(out, num_classes=10, **kw)) == 12
