"""Issue 21, data files that cannot be trusted: a ``pipe:`` command runs only from what the user typed
(or after an explicit opt-in), never from a manifest or a config file; declared sizes (manifest counts,
brace patterns) are checked against what exists before anything is allocated; and malformed shards
(missing files, bad counts, labels out of range or past 64 bits, URLs without their fsspec package)
end in one line that names the file."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

import pytest

from maest.cli import main as cli_main
from maest.data import dataset_from_source
from maest.data.shard_files import PipeRefused, expand_braces, read_manifest, resolve_shards

SPEC = dict(num_frames=4, sampling_rate=2, crop_size=32, repeat=1)


def _tar(path: Path, samples: list[dict[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tf:
        for i, sample in enumerate(samples):
            for ext, data in sample.items():
                info = tarfile.TarInfo(f"{i:06d}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def _video(digits) -> bytes:
    return sorted((digits["root"] / "videos").glob("*.mp4"))[0].read_bytes()


@pytest.fixture
def hostile(tmp_path):
    """A downloaded dataset folder whose manifest.json runs a command that leaves a marker file."""
    shard = _tar(tmp_path / "real.tar", [{"mp4": b"x" * 100}, {"mp4": b"y" * 100}])
    marker = tmp_path / "pwned"
    folder = tmp_path / "download"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(
        {"shards": [{"url": f"pipe:touch {marker}; cat {shard}", "count": 2}]}))
    return folder, marker, shard


# -- 1. pipe: commands -------------------------------------------------------------------------------------------------
def test_a_manifest_never_runs_a_command_by_default(hostile, tmp_path, capsys):
    folder, marker, _ = hostile
    args = ["pretrain", str(folder), "--preset", "tiny", "--output-dir", str(tmp_path / "run"),
            "--set", "train.max_steps=1", "--set", "train.progress=false", "--set", "train.tensorboard=false"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(folder / "manifest.json") in err and "data.allow_pipe=true" in err and "MAEST_ALLOW_PIPE" in err
    assert not marker.exists()
    with pytest.raises(PipeRefused):
        resolve_shards(folder / "manifest.json")
    assert not marker.exists()


def test_the_opt_in_runs_the_manifest_commands(hostile, monkeypatch):
    folder, marker, _ = hostile
    assert resolve_shards(folder, allow_pipe=True).counts == [2]
    monkeypatch.setenv("MAEST_ALLOW_PIPE", "1")
    assert resolve_shards(folder).counts == [2]
    assert not marker.exists()  # a manifest's count is believed: nothing ran yet
    ds = dataset_from_source(folder, mode="pretrain", **SPEC)
    assert len(ds) == 2


def test_shard_index_of_a_pipe_warns_and_writes_a_manifest_that_is_safe_to_share(hostile, tmp_path, capsys):
    _, marker, shard = hostile
    target = tmp_path / "index.json"
    assert cli_main(["shard", f"pipe:cat {shard}", str(target), "--index"]) == 0
    out = capsys.readouterr().out
    assert "lists shell commands" in out and "data.allow_pipe=true" in out
    with pytest.raises(PipeRefused, match=str(target)):
        read_manifest(target)
    assert read_manifest(target, allow_pipe=True).counts == [2]


# -- 4. declared sizes are checked before anything is allocated --------------------------------------------------------
def test_a_huge_manifest_count_is_refused_at_once(tmp_path):
    _tar(tmp_path / "a.tar", [{"mp4": b"x" * 100}])
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": [{"url": "a.tar", "count": 10**12}]}))
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"a\.tar claims 1000000000000 samples but its \d+ bytes hold at most"):
        dataset_from_source(tmp_path, mode="pretrain", **SPEC)
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": [{"url": "pipe:cat a.tar", "count": 10**12}]}))
    with pytest.raises(ValueError, match="claims 1000000000000 samples, more than any video shard"):
        resolve_shards(tmp_path, allow_pipe=True)
    assert time.perf_counter() - t0 < 5


def test_a_huge_brace_pattern_is_refused_without_listing_it(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="names more than 100000 shards"):
        resolve_shards(str(tmp_path / "x-{0..99999999}.tar"))
    with pytest.raises(ValueError, match="names more than"):
        expand_braces("s3://b/x-{0..99999999}-{0..99999999}.tar")
    assert time.perf_counter() - t0 < 5
    assert expand_braces("a-{1..3}") == ["a-1", "a-2", "a-3"]


# -- 5 and 6. malformed shards: one line naming the file ---------------------------------------------------------------
@pytest.mark.parametrize("count, match", [(-3, r"count -3"), ("7", r'count "7"'), (True, "count true")])
def test_a_bad_manifest_count_names_the_file_and_shard(tmp_path, count, match):
    _tar(tmp_path / "a.tar", [{"mp4": b"x" * 100}])
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": [{"url": "a.tar", "count": count}]}))
    with pytest.raises(ValueError, match=match) as e:
        resolve_shards(tmp_path)
    assert str(tmp_path / "manifest.json") in str(e.value) and "a.tar" in str(e.value)


def test_a_missing_shard_file_is_named(tmp_path, capsys):
    _tar(tmp_path / "a.tar", [{"mp4": b"x" * 100}])
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"shards": [{"url": "a.tar", "count": 1}, {"url": "gone.tar", "count": 11}]}))
    with pytest.raises(FileNotFoundError, match=r"shard .*gone\.tar listed in .*manifest\.json does not exist"):
        resolve_shards(tmp_path)


def test_an_http_shard_without_its_fsspec_package_is_one_line(tmp_path, monkeypatch, capsys):
    fsspec = pytest.importorskip("fsspec")

    def missing(*args, **kwargs):
        raise ImportError('HTTPFileSystem requires "requests" and "aiohttp" to be installed')

    monkeypatch.setattr(fsspec, "get_filesystem_class", missing)
    monkeypatch.setattr(fsspec, "open", missing)
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": [{"url": "http://example.invalid/a.tar",
                                                                     "count": 3}]}))
    with pytest.raises(RuntimeError, match=r"manifest\.json: reading http:// shards needs fsspec.*aiohttp"):
        resolve_shards(tmp_path)
    args = ["pretrain", "http://example.invalid/a.tar", "--preset", "tiny", "--output-dir", str(tmp_path / "r")]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "http://" in err


def test_shard_labels_past_64_bits_or_the_classes_name_the_shard_and_key(tmp_path, digits):
    video = _video(digits)
    path = _tar(tmp_path / "s.tar", [{"mp4": video, "cls": b"99999999999999999999"}, {"mp4": video, "cls": b"99"}])
    pre = dataset_from_source(path, mode="pretrain", **SPEC, seed=0)
    assert sorted(int(x["label"][0]) for x in pre) == [-1, 99]  # unused in pre-training: no OverflowError
    tune = dataset_from_source(path, mode="finetune", num_classes=5, **SPEC, seed=0)
    with pytest.raises(ValueError, match=r"s\.tar:00000[01]: label (99|99999999999999999999) is outside \[0, 5\)"):
        list(tune)


def test_shard_prefix_outside_the_output_folder_is_refused(tmp_path, digits, capsys):
    out = tmp_path / "a" / "b"
    assert cli_main(["shard", str(digits["train"]), str(out), "--prefix", "../../x", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--prefix '../../x' must be a plain file name" in err and "Traceback" not in err
    assert not list(tmp_path.rglob("*.tar")) and not list(tmp_path.rglob("*.tar.tmp"))


def test_a_bad_label_in_a_loader_worker_ends_the_run_in_one_line_without_hanging(tmp_path, digits):
    """Raised in a loader worker, the error reaches the user as its own line, and the workers stop (the
    process used to wait for them forever once a traceback held the loader)."""
    import subprocess
    import sys

    video = _video(digits)
    _tar(tmp_path / "a.tar", [{"mp4": video, "cls": b"1"}, {"mp4": video, "cls": b"99"}] * 2)
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": [{"url": "a.tar", "count": 4}],
                                                        "classes": ["a", "b", "c"]}))
    args = [sys.executable, "-m", "maest.cli", "finetune", str(tmp_path), "--preset", "tiny_finetune",
            "--output-dir", str(tmp_path / "run"), "--set", "data.num_workers=2", "--set", "model.num_classes=3",
            "--set", "train.progress=false", "--set", "train.tensorboard=false", "--set", "train.max_steps=4"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "a.tar:00000" in lines[0] and "label 99 is outside [0, 3)" in lines[0]
