"""Issue 22 §2: classes come from the data. A recipe without a class count takes the training data's (class
folders, a classes.txt beside a list, the largest label), a given count the data contradicts is refused in
one line, and the class names travel in the checkpoint into test, predict, the confusion matrix and the
Hugging Face export; top-k is named for k = min(5, classes)."""

from __future__ import annotations

import json

import pytest
import torch

from maest.cli import main
from maest.data import write_test_pattern
from maest.data.datasets import data_classes, dataset_from_source
from maest.eval.test import ViewAccumulator, summarize
from maest.loading import read

from ..helpers import QUIET, _one_line_error

pytestmark = pytest.mark.usefixtures("no_curves")
# a VideoMAE-architecture tiny classifier, so that the Hugging Face export applies
HF_LIKE = ["--set", "model.encoder.pos_embed_type=sincos", "--set", "model.encoder.cls_embed=false",
           "--set", "model.encoder.qkv_bias=qv", "--set", "model.encoder.final_norm_eps=1e-5"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two class folders of real H.264 files (no classes.txt anywhere)."""
    root = tmp_path_factory.mktemp("classes")
    for c, name in enumerate(("cats", "dogs")):
        for i in range(2):
            write_test_pattern(root / name / f"{i}.mp4", 40, 36, num_frames=20, seed=2 * c + i)
    return root


def test_data_says_how_many_classes_and_their_names(folders, tmp_path):
    assert data_classes(dataset_from_source(folders, mode="finetune")).names == ["cats", "dogs"]
    lst = tmp_path / "train.csv"
    lst.write_text(f"{folders}/cats/0.mp4 0\n{folders}/dogs/0.mp4 2\n")
    found = data_classes(dataset_from_source(lst, mode="finetune"))
    assert (found.count, found.names, found.exact) == (3, None, False)  # a bound: the largest label + 1
    (tmp_path / "classes.txt").write_text("cat\ndog\nowl\nfox\n")
    found = data_classes(dataset_from_source(lst, mode="finetune"))
    assert (found.count, found.names, found.exact) == (4, ["cat", "dog", "owl", "fox"], True)
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    with pytest.raises(ValueError, match="classes.txt names 2 classes but .*train.csv uses label 2"):
        dataset_from_source(lst, mode="finetune")


def test_finetune_takes_classes_and_names_from_the_folders(folders, tmp_path, capsys):
    out = tmp_path / "ft"
    argv = ["finetune", str(folders), "--preset", "tiny_finetune", "--output-dir", str(out),
            "--set", "train.max_steps=1", *HF_LIKE, *QUIET]
    _one_line_error(capsys, main([*argv, "--set", "model.num_classes=3"]), "model.num_classes=3",
                    "2 classes", "model.num_classes=2")
    assert main([*argv, "--json"]) == 0
    checkpoint = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["checkpoint"]
    cfg = read(checkpoint).model_config
    assert (cfg.num_classes, cfg.label_names) == (2, ["cats", "dogs"])
    assert json.loads((out / "config.json").read_text())["model"]["num_classes"] == 2

    # test: the confusion matrix and per-class accuracy are named; top-2 is the top-k of 2 classes
    assert main(["test", checkpoint, str(folders), "--clips", "1", "--crops", "1", "--num-workers", "0",
                 "--output-dir", str(tmp_path / "test")]) == 0
    text = capsys.readouterr().out
    assert "top-1" in text and "top-2" in text and "top-5" not in text
    res = json.loads((tmp_path / "test" / "results.json").read_text())
    assert res["classes"] == ["cats", "dogs"] and set(res["per_class"]) == {"cats", "dogs"}
    assert "top2" in res and "top5" not in res and res["topk"] == 2
    assert (tmp_path / "test" / "confusion.csv").read_text().startswith("true \\ predicted,cats,dogs")

    # predict and the Hugging Face export say the names too
    assert main(["predict", checkpoint, str(folders / "dogs" / "0.mp4"), "--out", str(tmp_path / "p.json")]) == 0
    assert {t["name"] for t in json.loads((tmp_path / "p.json").read_text())["videos"][0]["top"]} == {"cats", "dogs"}
    assert main(["convert", checkpoint, str(tmp_path / "hf"), "--to", "hf"]) == 0
    hf = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert hf["id2label"] == {"0": "cats", "1": "dogs"} and hf["label2id"] == {"cats": 0, "dogs": 1}


@pytest.mark.parametrize("classes,key", [(1, None), (2, "top2"), (5, "top5"), (7, "top5")])
def test_topk_is_named_for_k_min_5_classes(classes, key):
    acc = ViewAccumulator(num_videos=2, num_classes=classes)
    acc.add(torch.full((2, classes), 1.0 / classes), torch.tensor([0, 1]), torch.tensor([0, 0]))
    res = summarize(acc, [])
    assert res["topk"] == min(5, classes)
    assert sorted(k for k in res if k.startswith("top") and k[3:].isdigit()) == sorted({"top1", key or "top1"})
