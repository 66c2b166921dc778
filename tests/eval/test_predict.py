"""Issue 22 §1: from a video file to an answer. ``maest.read_video`` gives the model its own input (frames,
stride, size, normalisation), ``maest.predict`` and ``maest predict`` give named top-k classes per video
(files, folders, lists, shards) with multi-view averaging, unreadable videos listed, never scored; and
``maest test`` on unlabelled data names ``predict`` before any work."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import maest
from maest.cli import main
from maest.data import ClipSpec, VideoClipDataset, VideoDecodeError, corrupt_copy, write_test_pattern
from maest.models import create_model
from maest.runs import checkpoint as ckpt

from ..helpers import _one_line_error

NAMES = ["archery", "bowling", "cycling"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Three real H.264 files (two sizes), one broken copy, and a classifier checkpoint with class names
    whose run sampled every 2nd frame."""
    root = tmp_path_factory.mktemp("predict")
    files = [write_test_pattern(root / "clips" / f"v{i}.mp4", 48 + 16 * i, 40, num_frames=24, seed=i)
             for i in range(3)]
    broken = corrupt_copy(files[0], root / "clips" / "broken.mp4", "garbage")
    torch.manual_seed(0)
    model = create_model("vit_tiny_test", num_classes=3, label_names=NAMES, dropout=0.0)
    config = {"data": {"sampling_rate": 2}, "mix": {}, "model": {}}  # the run config a fine-tuning writes
    path = root / "run" / "checkpoint-00000010.pt"
    ckpt.atomic_save(ckpt.model_record(model.state_dict(), "classifier",
                                       dataclasses.asdict(model.model_cfg), config=config), path)
    return {"root": root, "files": files, "broken": broken, "ckpt": path}


def test_read_video_uses_the_models_frames_stride_size_and_normalisation(videos):
    model = maest.load(videos["ckpt"])
    assert model.sampling_rate == 2  # the run's data.sampling_rate, recorded by maest.load
    x = maest.read_video(videos["files"][1], model, clips=2, crops=3)
    e = model.model_cfg.encoder
    assert x.shape == (6, 3, e.num_frames, e.img_size, e.img_size)
    spec = ClipSpec(mode="test", num_frames=e.num_frames, sampling_rate=2, crop_size=e.img_size, test_clips=2,
                    test_crops=3, mean=e.mean, std=e.std)
    torch.testing.assert_close(x, VideoClipDataset([(str(videos["files"][1]), -1)], spec)[0]["video"])
    # a path works as the model too; another stride samples other frames
    torch.testing.assert_close(maest.read_video(videos["files"][1], videos["ckpt"], clips=2, crops=3), x)
    assert not torch.equal(maest.read_video(videos["files"][1], model, 2, 3, sampling_rate=4), x)


def test_predict_one_liner_names_the_classes_and_averages_the_views(videos):
    model = maest.load(videos["ckpt"])
    top = maest.predict(videos["ckpt"], str(videos["files"][0]), top_k=2, clips=2, crops=3)
    assert [t["name"] for t in top] == [NAMES[t["class"]] for t in top] and len(top) == 2
    with torch.no_grad():
        expected = torch.softmax(model(maest.read_video(videos["files"][0], model, 2, 3)), -1).mean(0).double()
    best = expected.topk(2)
    assert [t["class"] for t in top] == best.indices.tolist()
    assert [t["score"] for t in top] == pytest.approx(best.values.tolist(), abs=1e-6)
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        maest.predict(model, str(videos["broken"]))


def test_predict_over_a_folder_lists_unreadable_files(videos):
    out = maest.predict(videos["ckpt"], videos["root"] / "clips", top_k=5)
    scored = {r["path"] for r in out if "top" in r}
    assert scored == {str(f) for f in videos["files"]}
    assert all(len(r["top"]) == 3 for r in out if "top" in r)  # k = min(top_k, classes)
    (err,) = [r for r in out if "error" in r]
    assert err["path"] == str(videos["broken"]) and err["error"]


def test_predict_command_writes_csv_and_json_and_refuses_to_overwrite(videos, tmp_path, capsys):
    lst = tmp_path / "list.csv"
    lst.write_text(f"{videos['files'][2]}\n{videos['broken']}\n")
    out = tmp_path / "pred"
    argv = ["predict", str(videos["ckpt"]), str(videos["files"][0]), str(lst), "--output-dir", str(out),
            "--num-workers", "0", "--clips", "2"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "predicted 2 videos" in text and str(out / "predictions.csv") in text and "broken.mp4" in text
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["path"] for r in rows] == [str(videos["files"][0]), str(videos["files"][2]), str(videos["broken"])]
    assert rows[0]["top1"] in NAMES and float(rows[0]["top1_score"]) > 0 and rows[0]["error"] == ""
    assert rows[2]["top1"] == "" and rows[2]["error"]  # listed, never scored as zeros
    saved = json.loads((out / "predictions.json").read_text())
    assert saved["classes"] == NAMES and saved["clips"] == 2 and saved["sampling_rate"] == 2
    assert len(saved["failed"]) == 1 and len(saved["videos"][0]["top"]) == 3
    _one_line_error(capsys, main(argv), "predictions.csv", "--force")
    assert main([*argv, "--force", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == [str(out / "predictions.csv"),
                                                             str(out / "predictions.json")]
    one = tmp_path / "one.json"
    assert main(["predict", str(videos["ckpt"]), str(videos["files"][1]), "--out", str(one), "--num-workers", "0"]) == 0
    assert json.loads(one.read_text())["videos"][0]["path"] == str(videos["files"][1])


def test_predict_reads_shards(videos, tmp_path, capsys):
    from maest.data.shard_writer import write_shards

    write_shards([(str(f), -1) for f in videos["files"]], tmp_path / "shards", progress=False)
    out = tmp_path / "p.json"
    assert main(["predict", str(videos["ckpt"]), str(tmp_path / "shards"), "--out", str(out),
                 "--precision", "fp32"]) == 0
    saved = json.loads(out.read_text())
    assert len(saved["videos"]) == 3 and all(".tar:" in v["path"] for v in saved["videos"])
    # the same scores as the files themselves
    direct = maest.predict(videos["ckpt"], [str(f) for f in videos["files"]], top_k=3)
    assert [v["top"] for v in saved["videos"]] == [d["top"] for d in direct]


def test_predict_refuses_a_pretraining_checkpoint(videos, tmp_path, capsys):
    mae = create_model("mae_vit_tiny_test")
    path = ckpt.atomic_save(ckpt.model_record(mae.state_dict(), "mae",
                                              dataclasses.asdict(mae.model_cfg)), tmp_path / "mae.pt")
    _one_line_error(capsys, main(["predict", str(path), str(videos["files"][0]), "--out", str(tmp_path / "x.csv")]),
                    "pre-training (MAE)", "classifier")


@pytest.mark.parametrize("what", ["video", "folder", "list"])
def test_test_on_unlabelled_data_names_predict_before_any_work(videos, tmp_path, capsys, monkeypatch, what):
    import maest.eval.test as t

    monkeypatch.setattr(t, "predict_views", lambda *a, **k: pytest.fail("inference ran"))
    data = {"video": videos["files"][0], "folder": videos["root"] / "clips", "list": tmp_path / "l.csv"}[what]
    (tmp_path / "l.csv").write_text(f"{videos['files'][0]} 1\n{videos['files'][1]}\n")
    out = tmp_path / "test"
    _one_line_error(capsys, main(["test", str(videos["ckpt"]), str(data), "--output-dir", str(out)]),
                    "needs label", "maest predict")
    assert not any(out.iterdir())


def test_import_maest_is_light_and_exports_the_one_liners():
    code = ("import sys, maest; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'annotations' not in dir(maest); "
            "assert set(maest.__all__) == {'create_model', 'load', 'predict', 'read_video', '__version__'}; "
            "assert all(callable(getattr(maest, n)) for n in maest.__all__[:4])")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert Path(maest.__file__).with_name("py.typed").is_file()
    assert 'maest = ["py.typed"]' in (Path(__file__).parents[2] / "pyproject.toml").read_text()
