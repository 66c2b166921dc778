"""Issue 13, labels: list labels are checked against ``num_classes`` when read (with the file and line), a
fine-tuning run with out-of-range labels stops before training, and too many class folders are refused."""

from __future__ import annotations

import pytest

from maest.cli import main

from ..helpers import QUIET, _one_line_error

pytestmark = pytest.mark.usefixtures("no_curves")


@pytest.mark.parametrize("label", ["15", "-2", "-1"])
def test_labels_are_checked_against_num_classes_when_read(label, tmp_path):
    from maest.data.datasets import dataset_from_source, read_csv_list

    lst = tmp_path / "train.csv"
    lst.write_text(f"a.mp4 0\nb.mp4 {label}\n")
    with pytest.raises(ValueError, match=rf"train.csv:2: label {label} .*num_classes=10"):
        read_csv_list(lst, num_classes=10)
    with pytest.raises(ValueError, match=r"train.csv:2"):
        dataset_from_source(lst, mode="finetune", num_classes=10)
    read_csv_list(lst)  # without a class count (pre-training) any label is accepted


def test_finetune_with_out_of_range_labels_fails_before_training(tmp_path, capsys):
    lst = tmp_path / "train.csv"
    lst.write_text("a.mp4 0\nb.mp4 1\nc.mp4 15\n")
    # a given class count (issue 22: the presets take it from the data) is checked as the list is read
    _one_line_error(capsys, main(["finetune", str(lst), "--preset", "tiny_finetune", "--output-dir",
                                  str(tmp_path / "ft"), "--set", "model.num_classes=3", *QUIET]),
                    "train.csv:3", "label 15", "model.num_classes=3")


def test_too_many_class_folders_for_num_classes(tmp_path):
    from maest.data.datasets import dataset_from_source

    for c in "abcd":
        (tmp_path / c).mkdir()
        (tmp_path / c / "v.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match="4 class folders .*num_classes=3"):
        dataset_from_source(tmp_path, mode="finetune", num_classes=3)
