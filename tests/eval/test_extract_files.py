"""Issue 21 §6: ``maest extract`` writes its outputs atomically: a write error (a full disk) leaves no
truncated index.csv, no features without their index, and an earlier run's files as they were."""

from __future__ import annotations

import csv
import errno

import numpy as np
import pytest

from maest.eval.features import write_features

ROWS = [{"path": f"v{i}.mp4", "label": i % 3, "clip": 0} for i in range(50)]


def test_a_write_error_leaves_no_truncated_index_and_keeps_the_earlier_files(tmp_path, monkeypatch):
    feats = np.arange(50 * 4, dtype=np.float32).reshape(50, 4)
    first = write_features(feats, ROWS, [], tmp_path, "npy")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = csv.DictWriter.writerow

    def full_after_ten(self, row):
        if isinstance(row["row"], int) and row["row"] >= 10:  # the header row is the field names
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, row)

    monkeypatch.setattr(csv.DictWriter, "writerow", full_after_ten)
    with pytest.raises(OSError, match="No space left"):
        write_features(feats * 2, ROWS, ["bad.mp4 (broken)"], tmp_path, "npy")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporaries, nothing replaced
    monkeypatch.undo()
    second = write_features(feats * 2, ROWS, ["bad.mp4 (broken)"], tmp_path, "npy")
    assert second == first
    assert np.array_equal(np.load(tmp_path / "features.npy"), feats * 2)
    assert len((tmp_path / "index.csv").read_text().splitlines()) == 51
    assert (tmp_path / "failed.txt").read_text() == "bad.mp4 (broken)\n"
