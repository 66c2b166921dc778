from __future__ import annotations

import pytest

from maest.data import corrupt_copy, write_moving_digits


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """10 real H.264 moving-digit videos (32 frames, 64 px) with train/val lists."""
    return write_moving_digits(tmp_path_factory.mktemp("digits"), num_videos=10, num_frames=32, size=64,
                               val_fraction=0.2)


@pytest.fixture(scope="session")
def corrupt_corpus(tmp_path_factory, digits):
    """A list of 10 videos where 2 (a fifth) are broken: one truncated, one garbage."""
    root = tmp_path_factory.mktemp("corpus")
    videos = sorted((digits["root"] / "videos").glob("*.mp4"))
    lines, bad = [], []
    for i, v in enumerate(videos):
        if i == 3:
            dst = corrupt_copy(v, root / "truncated.mp4", "truncate")
            bad.append(str(dst))
        elif i == 7:
            dst = corrupt_copy(v, root / "garbage.mp4", "garbage")
            bad.append(str(dst))
        else:
            dst = v
        lines.append(f"{dst} {i % 10}")
    (root / "list.csv").write_text("\n".join(lines) + "\n")
    return root / "list.csv", bad
